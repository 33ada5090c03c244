import ArgumentParser
import Dispatch
import Foundation
import LinliSimulation

/// `linli-sim simulate`: the deterministic simulation (docs/RELIABILITY.md).
struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the deterministic simulation: a server and devices in one process, the network, clock and crashes driven by seeds.",
        discussion: """
            Replays one seed with --seed, or runs --seeds N from --from (default 1). A failure prints the seed, the step,
            the broken invariant and the command that replays it, and exits 1.
            """)

    @Option(help: "Replay this one seed.") var seed: UInt64?
    @Option(help: "How many seeds to run.") var seeds: Int = 1_000
    @Option(help: "The first seed.") var from: UInt64 = 1
    @Option(help: "Steps per seed.") var steps: Int = 40

    func run() async throws {
        let started = DispatchTime.now().uptimeNanoseconds
        let (first, count) = seed.map { ($0, 1) } ?? (from, seeds)
        do {
            let faults = try await Simulation.runSeeds(from: first, count: count, steps: steps)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            print("seeds \(first)..<\(first + UInt64(count)) passed in \(String(format: "%.1f", seconds)) s, \(steps) steps each")
            print(faults.description)
        } catch let failure as Simulation.Failure {
            FileHandle.standardError.write(Data("\(failure)\n".utf8))
            throw ExitCode(1)
        }
    }
}
