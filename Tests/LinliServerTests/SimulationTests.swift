import Foundation
import LinliSimulation
import Testing

/// The deterministic simulation (docs/RELIABILITY.md): many seeds of a
/// district day on a faulty network with crashes and a restored server.
/// `LINLI_SIM_SEEDS` sets how many (default 1,000), `LINLI_SIM_STEPS` the
/// steps of each (default 16) and `LINLI_SIM_FROM`
/// the first; a failure prints the command that replays its seed alone.
struct SimulationTests {
    @Test func everySeededDayLosesNothingAndConverges() async throws {
        let environment = ProcessInfo.processInfo.environment
        let count = environment["LINLI_SIM_SEEDS"].flatMap(Int.init) ?? 1_000
        let steps = environment["LINLI_SIM_STEPS"].flatMap(Int.init) ?? 16
        let first = environment["LINLI_SIM_FROM"].flatMap(UInt64.init) ?? 1
        do {
            let faults = try await Simulation.runSeeds(from: first, count: count, steps: steps)
            print("simulation: \(count) seeds from \(first): \(faults)")
            #expect(faults.flippedAnswers > 0 && faults.flippedRequests > 0 && faults.lostAnswers > 0 && faults.duplicated > 0)
            #expect(count < 50 || (faults.serverRestores > 0 && faults.serverCrashes > 0 && faults.repairs > 0), "\(faults)")
        } catch let failure as Simulation.Failure {
            Issue.record("\(failure)")
        }
    }
}
