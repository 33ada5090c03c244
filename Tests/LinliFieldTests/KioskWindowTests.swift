import Foundation
import LinliCore
import LinliTesting
import Testing

/// `linli-kiosk run` syncs inside its night window and not after it: with
/// the server down, it retries with its own --retry-seconds and stops when
/// the window closes, keeping what waits for the next night.
@Suite struct KioskWindowTests {
    @Test func aKioskWithItsServerDownStopsAtTheEndOfItsWindow() async throws {
        let district = try await District()
        let signup = try district.json("kiosk", ["signup", "name=陈静", "phone=13512345678", "address=幸福路15号", "skills=推拿"]) as? [String: Any]
        #expect((signup?["receipt"] as? String)?.count == 8)
        district.server.terminate()
        district.server.waitUntilExit()

        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        let opens = Date()
        let closes = opens.addingTimeInterval(8)
        let window = "\(formatter.string(from: opens))-\(formatter.string(from: closes))"
        let started = Date()
        let night = try district.run("kiosk", ["run", "--window", window, "--once", "--retry-seconds", "1",
                                               "--log", district.folder.path("kiosk.log")])
        let took = Date().timeIntervalSince(started)
        let log = try String(contentsOfFile: district.folder.path("kiosk.log"), encoding: .utf8)
        #expect(night.status == 1, "the window closed without a sync: \(night.status) \(night.error)")
        // The window is 8 s (its seconds are whole, so up to 9); before, one
        // sync's own retries ran 95 s past it.
        #expect(took < 18, "took \(took) s for an 8-second window\n\(log)")
        let attempts = log.components(separatedBy: "\n").filter { $0.contains("sync failed (attempt") }
        #expect(attempts.count >= 1, "\(log)")
        // The moment is random inside the window: with 3 s or more left, a
        // wait of --retry-seconds 1 leaves room for a second attempt.
        let planned = log.components(separatedBy: "\n").first { $0.contains("next sync at") }
        let times = planned?.components(separatedBy: " ").compactMap { ISO8601DateFormatter().date(from: $0.trimmingCharacters(in: CharacterSet(charactersIn: "()"))) } ?? []
        if times.count == 3, times[2].timeIntervalSince(times[1]) >= 3 {
            #expect(attempts.count >= 2, "retried with --retry-seconds 1 inside the window\n\(log)")
        }
        // Waits double from --retry-seconds 1: at most 8 s by the fourth attempt of an 8-second window.
        let waits = attempts.compactMap { $0.components(separatedBy: "next try in ").last?.split(separator: " ").first.flatMap { Int($0) } }
        #expect(waits.count == attempts.count && waits.allSatisfy { $0 <= 8 }, "waits \(waits)\n\(log)")
        #expect(log.contains("1 change set(s) wait on the kiosk for the next"), "\(log)")
    }
}
