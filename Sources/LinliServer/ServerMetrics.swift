import Foundation
import LinliCore
import Metrics
import Prometheus
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The series `/metrics` shows, declared when the process starts so the
/// first scrape already has each of them (a counter at zero, not absent:
/// an alert on `rate(linli_refusals_total[5m])` needs a series to rate),
/// and the process's own figures (memory, file descriptors, CPU), read
/// from `/proc` at each scrape.
public enum ServerMetrics {
    /// The buckets of ``storeSeconds``: store operations take from tens of
    /// microseconds (a head lookup) to seconds (a snapshot of a district).
    public static let storeBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2), .seconds(5), .seconds(10),
    ]
    /// The latency of each store operation, by `operation` (``MeasuredStorage``).
    public static let storeSeconds = "linli_store_seconds"
    /// Store operations running now, by `operation`: for SQLite how much of
    /// its one writer and its readers is taken, for a pool how much of it.
    public static let storeInFlight = "linli_store_operations_in_flight"
    /// Store operations that failed, by `operation`.
    public static let storeFailures = "linli_store_failures_total"

    /// The refusal reasons the gatekeeper gives a change set (TRUST.md §7).
    static let refusalReasons: [LinliError.Code] = [
        .malformed, .overLimit, .badSignature, .unknownKey, .brokenChain, .fork, .deviceQuarantined, .clockAhead,
        .schemaViolation, .unsupportedFormat, .revoked, .outOfScope, .notPermitted,
    ]

    /// The factory for the Prometheus registry, with the store's buckets.
    public static func factory(_ registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[storeSeconds] = storeBuckets
        return factory
    }

    /// Makes every series of the server at its zero. Call once after
    /// `MetricsSystem.bootstrap`.
    public static func declare(desk: Bool) {
        for name in ["linli_pushes_total", "linli_pushed_change_sets_total", "linli_pulls_total", "linli_pulled_change_sets_total",
                     "linli_heads_total", "linli_snapshots_served_total", "linli_compressed_bytes_saved_total",
                     "linli_readiness_failures_total"] {
            Counter(label: name).increment(by: 0)
        }
        for reason in refusalReasons {
            Counter(label: "linli_refusals_total", dimensions: [("reason", reason.rawValue)]).increment(by: 0)
        }
        _ = Timer(label: "linli_push_commit_seconds")
        _ = Timer(label: "linli_snapshot_seconds")
        _ = Recorder(label: "linli_group_commit_pushes")
        for kind in ReviewKind.allCases {
            Gauge(label: "linli_review_items_open", dimensions: [("kind", kind.rawValue)]).record(0)
        }
        for operation in MeasuredStorage.operations {
            _ = Timer(label: storeSeconds, dimensions: [("operation", operation)])
            Meter(label: storeInFlight, dimensions: [("operation", operation)]).set(0)
            Counter(label: storeFailures, dimensions: [("operation", operation)]).increment(by: 0)
        }
        if desk {
            Counter(label: "linli_desk_queue_reads_total").increment(by: 0)
            for result in ["ok", "refused", "not_staff", "throttled"] {
                Counter(label: "linli_desk_logins_total", dimensions: [("result", result)]).increment(by: 0)
            }
            for kind in ReviewKind.allCases.map(\.rawValue) + ["bulk_newest"] {
                Counter(label: "linli_desk_resolutions_total", dimensions: [("kind", kind)]).increment(by: 0)
            }
        }
    }
}

/// The process's figures under the names Prometheus's own clients use:
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
/// `process_open_fds`, `process_max_fds`, `process_cpu_seconds_total` and
/// `process_start_time_seconds`. Linux only (`/proc/self`); elsewhere the
/// series stay at zero.
public final class ProcessMetrics: Sendable {
    private let resident: Prometheus.Gauge
    private let virtualMemory: Prometheus.Gauge
    private let openFiles: Prometheus.Gauge
    private let maxFiles: Prometheus.Gauge
    private let cpu: Prometheus.Counter
    private let started: Prometheus.Gauge
    /// The CPU seconds already added to the counter, which only goes up.
    private let cpuCounted = Mutex<Double>(0)

    public init(registry: PrometheusCollectorRegistry) {
        resident = registry.makeGauge(name: "process_resident_memory_bytes", help: "Resident memory size in bytes.")
        virtualMemory = registry.makeGauge(name: "process_virtual_memory_bytes", help: "Virtual memory size in bytes.")
        openFiles = registry.makeGauge(name: "process_open_fds", help: "Number of open file descriptors.")
        maxFiles = registry.makeGauge(name: "process_max_fds", help: "Maximum number of open file descriptors.")
        cpu = registry.makeCounter(name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.")
        started = registry.makeGauge(name: "process_start_time_seconds", help: "Start time of the process since unix epoch in seconds.")
        update()
    }

    /// Reads `/proc/self` again; called before each scrape is written.
    public func update() {
        #if os(Linux)
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        if let statm = Self.read("/proc/self/statm")?.split(separator: " "), statm.count >= 2,
           let size = Double(statm[0]), let rss = Double(statm[1]) {
            virtualMemory.set(to: size * page)
            resident.set(to: rss * page)
        }
        if let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            // One of them is the directory being listed.
            openFiles.set(to: Double(max(0, names.count - 1)))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFiles.set(to: Double(limit.rlim_cur)) }
        // The fields after the command name, which is in parentheses and may
        // hold spaces: field N of proc(5) is at N - 3.
        if let stat = Self.read("/proc/self/stat"), let close = stat.lastIndex(of: ")"), ticks > 0 {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 19, let user = Double(fields[11]), let system = Double(fields[12]), let start = Double(fields[19]) {
                let total = (user + system) / ticks
                cpuCounted.withLock { counted in
                    if total > counted {
                        cpu.increment(by: total - counted)
                        counted = total
                    }
                }
                if let boot = Self.boot { started.set(to: boot + start / ticks) }
            }
        }
        #endif
    }

    private static let boot = bootTime()

    /// The system's boot time in seconds since the epoch (`btime` of `/proc/stat`).
    private static func bootTime() -> Double? {
        guard let stat = read("/proc/stat", bytesMax: Limits.procFileBytesMax) else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst("btime ".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// A small file of `/proc`, at most `bytesMax` bytes of it.
    private static func read(_ path: String, bytesMax: Int = 4096) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: bytesMax) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
