import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL server for tests: a temporary cluster made with
/// `initdb`, started with `pg_ctl` on 127.0.0.1 at a free port, stopped and
/// deleted when the test process ends.
///
/// PostgreSQL refuses to run as root, and the tests run as root in CI, so
/// as root the cluster's folder belongs to the `postgres` user and the
/// server programs run as that user (`runuser`). Connections use TCP on
/// loopback with `trust` authentication, as the user `linli`.
///
/// One cluster serves a whole test process (``shared()``, started on first
/// use); each test takes a database of its own (``createDatabase()``).
/// Without PostgreSQL 15 the tests fail, naming what to install: a store
/// that is never tested must not look tested.
public final class PostgresCluster: Sendable {
    /// The folder of PostgreSQL's programs; `LINLI_POSTGRES_BIN` overrides it.
    public static var binDirectory: String {
        ProcessInfo.processInfo.environment["LINLI_POSTGRES_BIN"] ?? "/usr/lib/postgresql/15/bin"
    }

    /// The user every connection logs in as.
    public static let user = "linli"

    public let host = "127.0.0.1"
    public let port: Int
    /// The temporary folder: the cluster's data, its socket and its log.
    public let folder: String
    private let runAs: String?

    private static let state = SharedCluster()

    /// The cluster of this test process, started on first use.
    public static func shared() async throws -> PostgresCluster {
        try await state.cluster()
    }

    /// A new empty database on the shared cluster; its URL,
    /// `postgres://linli@127.0.0.1:PORT/NAME`.
    public static func createDatabase(prefix: String = "t") async throws -> String {
        let cluster = try await shared()
        return try cluster.createDatabase(prefix: prefix)
    }

    public func url(database: String) -> String { "postgres://\(Self.user)@\(host):\(port)/\(database)" }

    /// Creates a database named `prefix` with a random suffix and returns its URL.
    public func createDatabase(prefix: String = "t") throws -> String {
        let name = "\(prefix)_\(UInt64.random(in: 0 ... UInt64.max) & 0xFFFF_FFFF_FFFF)".lowercased()
        try Self.check(Programs.run(Self.program("createdb"),
                                    ["-h", host, "-p", String(port), "-U", Self.user, name]),
                       doing: "createdb \(name)")
        return url(database: name)
    }

    /// Stops the server (`pg_ctl stop -m fast`) and deletes its folder.
    public func stop() {
        let arguments = ["stop", "-D", "\(folder)/data", "-m", "fast", "-w", "-t", "30"]
        let stopper = Process()
        if let runAs {
            stopper.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            stopper.arguments = ["-u", runAs, "--", Self.program("pg_ctl")] + arguments
        } else {
            stopper.executableURL = URL(fileURLWithPath: Self.program("pg_ctl"))
            stopper.arguments = arguments
        }
        // Nothing is read from it: this also runs while the process exits.
        stopper.standardInput = FileHandle.nullDevice
        stopper.standardOutput = FileHandle.nullDevice
        stopper.standardError = FileHandle.nullDevice
        if (try? stopper.run()) != nil { stopper.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: folder)
    }

    // MARK: Starting

    private init(port: Int, folder: String, runAs: String?) {
        self.port = port
        self.folder = folder
        self.runAs = runAs
    }

    static func program(_ name: String) -> String { "\(binDirectory)/\(name)" }

    /// Makes, starts and returns a cluster in a new temporary folder.
    static func start() throws -> PostgresCluster {
        let initdb = program("initdb")
        guard FileManager.default.isExecutableFile(atPath: initdb) else {
            throw ClusterError("PostgreSQL 15 is not installed here: \(initdb) is missing. Run `make deps` (it installs Debian's postgresql-15), or set LINLI_POSTGRES_BIN to the folder of initdb, pg_ctl and postgres.")
        }
        let root = geteuid() == 0
        if root, getpwnam("postgres") == nil {
            throw ClusterError("the tests run as root, and PostgreSQL runs only as another user, but there is no `postgres` user; install Debian's postgresql-15, which makes it")
        }
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("linli-pg-XXXXXX").path
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { throw ClusterError("cannot make a temporary folder for PostgreSQL: \(String(cString: strerror(errno)))") }
        let folder = String(cString: made)
        let cluster = PostgresCluster(port: 0, folder: folder, runAs: root ? "postgres" : nil)
        do {
            if root, let entry = getpwnam("postgres") {
                guard chown(folder, entry.pointee.pw_uid, entry.pointee.pw_gid) == 0 else {
                    throw ClusterError("cannot give \(folder) to the postgres user: \(String(cString: strerror(errno)))")
                }
            }
            try check(cluster.run("initdb", ["-D", "\(folder)/data", "-A", "trust", "-U", user, "-E", "UTF8",
                                             "--locale=C", "--no-sync"]), doing: "initdb")
            // A port another program takes between the probe and the start
            // makes pg_ctl fail; another free port is tried.
            var lastFailure = ""
            for _ in 0 ..< 5 {
                let port = try freePort()
                let options = "-c listen_addresses=127.0.0.1 -p \(port) -c unix_socket_directories='\(folder)' -c fsync=on -c max_connections=200"
                let started = try cluster.run("pg_ctl", ["start", "-D", "\(folder)/data", "-l", "\(folder)/server.log",
                                                          "-w", "-t", "60", "-o", options], closingInherited: true)
                if started.status == 0 {
                    let running = PostgresCluster(port: port, folder: folder, runAs: cluster.runAs)
                    running.watch()
                    return running
                }
                lastFailure = started.output + started.error
                    + ((try? String(contentsOfFile: "\(folder)/server.log", encoding: .utf8)) ?? "")
            }
            throw ClusterError("pg_ctl could not start PostgreSQL: \(lastFailure)")
        } catch {
            _ = try? cluster.run("pg_ctl", ["stop", "-D", "\(folder)/data", "-m", "immediate"])
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
    }

    /// Runs a PostgreSQL program, as the `postgres` user when the tests run as root.
    ///
    /// `closingInherited`: through a shell that first closes every file
    /// descriptor but the standard three. Foundation's `Process` gives each
    /// child a descriptor whose closing tells it the child ended; the
    /// server that `pg_ctl start` leaves running would inherit it, and the
    /// start would look unfinished for as long as the server runs.
    private func run(_ name: String, _ arguments: [String], closingInherited: Bool = false) throws -> Programs.Result {
        var command = [Self.program(name)] + arguments
        if let runAs { command = ["/usr/sbin/runuser", "-u", runAs, "--"] + command }
        if closingInherited {
            let closeAll = #"for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi; done; exec "$@""#
            command = ["/bin/bash", "-c", closeAll, "linli-pg"] + command
        }
        return try Programs.run(command[0], Array(command.dropFirst()), directory: URL(fileURLWithPath: folder))
    }

    private static func check(_ result: Programs.Result, doing what: String) throws {
        guard result.status == 0 else {
            throw ClusterError("\(what) failed (exit \(result.status)): \(result.output)\(result.error)")
        }
    }

    /// A port on 127.0.0.1 that nothing listens on now.
    public static func freePort() throws -> Int {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { throw ClusterError("cannot open a socket to find a free port") }
        defer { close(socketFD) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(socketFD, generic, length) == 0 && getsockname(socketFD, generic, &length) == 0
            }
        }
        guard bound else { throw ClusterError("cannot find a free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Stops the cluster when the test process ends: at a normal exit
    /// (`atexit`), and through a small watcher process when the test
    /// process dies without one (a crash, a kill), so no server is left
    /// running and no folder left behind.
    private func watch() {
        Self.stopAtExit = self
        atexit { PostgresCluster.stopAtExit?.stop() }
        let pgctl = Self.program("pg_ctl")
        let stopCommand = runAs.map { "/usr/sbin/runuser -u \($0) -- \(pgctl)" } ?? pgctl
        let script = """
            while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done
            \(stopCommand) stop -D '\(folder)/data' -m immediate >/dev/null 2>&1
            rm -rf '\(folder)'
            """
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: "/bin/sh")
        watcher.arguments = ["-c", script]
        watcher.standardInput = FileHandle.nullDevice
        watcher.standardOutput = FileHandle.nullDevice
        watcher.standardError = FileHandle.nullDevice
        try? watcher.run()
    }

    nonisolated(unsafe) private static var stopAtExit: PostgresCluster?
}

/// Why the test cluster could not be made or used.
public struct ClusterError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Starts the cluster once per process; concurrent first callers wait for
/// the same start, and a failed start is reported to each of them.
private actor SharedCluster {
    private var started: Result<PostgresCluster, any Error>?
    private var starting: Task<PostgresCluster, any Error>?

    func cluster() async throws -> PostgresCluster {
        if let started { return try started.get() }
        if let starting { return try await starting.value }
        let task = Task.detached { try PostgresCluster.start() }
        starting = task
        let result = await task.result
        started = result
        starting = nil
        return try result.get()
    }
}
