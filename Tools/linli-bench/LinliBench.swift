import ArgumentParser
import Foundation

@main
struct LinliBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linli-bench",
        abstract: "Measures Linli against plain SQLite on this machine, in one run.",
        discussion: "Build with -c release. Results are printed as one JSON object with --json.",
        subcommands: [MergeBenchmark.self, SyncBenchmark.self, BootstrapBenchmark.self, DeskBenchmark.self])
}

/// Timing helpers shared by the benchmarks.
enum Stopwatch {
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}

/// Bytes a SQLite database takes on disk, main file and WAL together.
func databaseBytes(_ path: String) -> Int {
    [path, path + "-wal"].reduce(0) { total, file in
        total + ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0)
    }
}

func printJSON(_ object: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: data, as: UTF8.self))
}

func round3(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
