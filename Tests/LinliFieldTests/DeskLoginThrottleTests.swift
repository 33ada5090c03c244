import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LinliCore
import LinliTesting
import Synchronization
import Testing

/// The desk's login throttle against a real `linli-server` with a real desk
/// account: who can be kept out, and how many password checks a wait lets
/// through. The server is told to trust its proxy (`--desk-trust-proxy`), so
/// the tests speak as nginx does: the client's address is the last one of
/// `X-Forwarded-For`, after a made-up one a client could have sent itself.
@Suite(.serialized) struct DeskLoginThrottleTests {
    static let staff = DeskWebTests.staff
    static let password = DeskWebTests.password

    /// A district with one desk account, served at /desk.
    static func desk() async throws -> District {
        let district = try await District()
        let folder = district.folder
        try "\(password)\n".write(toFile: folder.path("desk-password"), atomically: true, encoding: .utf8)
        let accounts = folder.path("desk-accounts.json")
        try district.admin(["desk", "add", "--user", staff, "--password-file", folder.path("desk-password"), "--accounts", accounts] + district.auth)
        try district.admin(["sync"] + district.auth + ["--server", district.url])
        try await DeskWebTests.Desk.restart(district, extra: ["--desk-accounts", accounts, "--desk-trust-proxy"])
        return district
    }

    /// Logs in as a browser behind nginx at `address` does.
    static func login(_ base: String, user: String, password: String, from address: String?) async throws -> Plain.Answer {
        let form = try await Plain.send("GET", base + "/desk", headers: forwarded(address))
        let token = try #require(Plain.hidden("login_csrf", in: form.body))
        return try await post(base, token: token, user: user, password: password, from: address)
    }

    static func post(_ base: String, token: String, user: String, password: String, from address: String?) async throws -> Plain.Answer {
        try await Plain.send("POST", base + "/desk/login", cookies: ["linli_desk_login": token],
                             form: ["user": user, "password": password, "login_csrf": token], headers: forwarded(address))
    }

    static func forwarded(_ address: String?) -> [(String, String)] {
        address.map { [("X-Forwarded-For", "10.9.8.7, \($0)")] } ?? []
    }

    /// Wrong tries of `user` from `address` until `count` were checked
    /// (401), sleeping through the waits in between.
    static func fail(_ base: String, user: String, from address: String?, count: Int) async throws {
        var checked = 0
        while checked < count {
            let wrong = try await login(base, user: user, password: "wrong \(checked)", from: address)
            if wrong.status == 429 {
                let seconds = UInt64(wrong.headers["retry-after"] ?? "") ?? 1
                try await Task.sleep(nanoseconds: seconds * 1_000_000_000 + 100_000_000)
                continue
            }
            #expect(wrong.status == 401, "\(wrong.status) \(wrong.body.prefix(200))")
            checked += 1
        }
    }

    static func succeeded(_ answer: Plain.Answer) -> Bool { answer.status == 303 && answer.location == "/desk/queue" }

    // MARK: - Finding: parallel tries during a wait

    @Test func eightParallelWrongTriesGetAtMostOnePasswordCheckPerWait() async throws {
        let district = try await Self.desk()
        let base = district.url
        let address = "192.0.2.9"
        // Three free failures; then each failure makes the next try wait.
        try await Self.fail(base, user: Self.staff, from: address, count: Limits.deskLoginFailuresFree)
        for round in 1...2 {
            // Past the wait; eight forms fetched first, then eight posts at once.
            try await Task.sleep(nanoseconds: UInt64(1) << UInt64(round - 1) * 1_000_000_000 + 300_000_000)
            var tokens: [String] = []
            for _ in 0..<8 {
                let form = try await Plain.send("GET", base + "/desk", headers: Self.forwarded(address))
                tokens.append(try #require(Plain.hidden("login_csrf", in: form.body)))
            }
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for (index, token) in tokens.enumerated() {
                    group.addTask { try await Self.post(base, token: token, user: Self.staff, password: "parallel \(round) \(index)", from: address).status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            // A password check answers 401; a try refused without one, 429.
            #expect(statuses.filter { $0 == 401 }.count == 1, "round \(round): \(statuses.sorted())")
            #expect(statuses.filter { $0 == 429 }.count == 7, "round \(round): \(statuses.sorted())")
        }
        let refused = try String(contentsOfFile: district.folder.path("server.log"), encoding: .utf8)
            .components(separatedBy: "desk login refused").count - 1
        #expect(refused == Limits.deskLoginFailuresFree + 2, "password checks that failed: \(refused)")
    }

    // MARK: - Finding: one name kept waiting by someone else's wrong tries

    @Test func wrongTriesFromElsewhereNeverMakeTheRightPasswordWait() async throws {
        let district = try await Self.desk()
        let base = district.url
        let attacker = "203.0.113.7"
        let office = "198.51.100.20"
        // Someone elsewhere guesses the staff member's password, enough for
        // a wait of 4 s, and keeps it going with one wrong try each time
        // the wait ends.
        try await Self.fail(base, user: Self.staff, from: attacker, count: 5)
        let waiting = try await Self.login(base, user: Self.staff, password: Self.password, from: attacker)
        #expect(waiting.status == 429 && waiting.body.contains("Too many failed logins for this user name"), "\(waiting.status)")
        // The staff member at the office is let in at once, every time.
        let first = try await Self.login(base, user: Self.staff, password: Self.password, from: office)
        #expect(Self.succeeded(first), "\(first.status) \(first.body.prefix(300))")
        try await Self.fail(base, user: Self.staff, from: attacker, count: 1)
        let failedAt = Date()
        let second = try await Self.login(base, user: Self.staff, password: Self.password, from: office)
        #expect(Self.succeeded(second), "\(second.status) \(second.body.prefix(300))")
        // The guesser's own wait ends on its schedule: after it, the right
        // password from there gets in too (it waits for its own failures only).
        let own = try await Self.login(base, user: Self.staff, password: Self.password, from: attacker)
        if own.status == 429 {
            let seconds = UInt64(own.headers["retry-after"] ?? "") ?? 8
            #expect((1...8).contains(seconds), "Retry-After \(own.headers["retry-after"] ?? "none")")
            try await Task.sleep(nanoseconds: seconds * 1_000_000_000 + 300_000_000)
            let after = try await Self.login(base, user: Self.staff, password: Self.password, from: attacker)
            #expect(Self.succeeded(after), "\(after.status)")
        } else {
            // On a loaded machine the wait (at least 4 s) may have passed
            // before this try: let in then, and only then.
            #expect(Self.succeeded(own) && Date().timeIntervalSince(failedAt) >= 4, "\(own.status) after \(Date().timeIntervalSince(failedAt)) s")
        }
        // An address trying name after name waits for every name.
        for index in 0..<Limits.deskLoginFailuresPerAddressFree {
            let wrong = try await Self.login(base, user: "猜测\(index)", password: "x", from: "203.0.113.8")
            #expect(wrong.status == 401, "\(wrong.status)")
        }
        let spray = try await Self.login(base, user: Self.staff, password: Self.password, from: "203.0.113.8")
        #expect(spray.status == 429 && spray.body.contains("from your network address"), "\(spray.status)")
    }

    // MARK: - Finding: a flood of random names takes every password-check slot

    @Test func aFloodOfRandomNamesFromOneAddressDoesNotKeepOthersOut() async throws {
        let district = try await Self.desk()
        let base = district.url
        let flood = Flood()
        let outcomes = try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var index = 0
                    while !flood.stop.withLock({ $0 }) {
                        let answer = try await Self.login(base, user: "flood-\(worker)-\(index)-\(UInt32.random(in: 0...UInt32.max))",
                                                          password: "guess", from: "203.0.113.66")
                        flood.statuses.withLock { $0.append(answer.status) }
                        index += 1
                        try await Task.sleep(nanoseconds: 5_000_000)
                    }
                }
            }
            // Let the flood take hold, then ten real logins from the office.
            try await Task.sleep(nanoseconds: 1_000_000_000)
            var real: [Int] = []
            for _ in 0..<10 {
                let answer = try await Self.login(base, user: Self.staff, password: Self.password, from: "198.51.100.20")
                real.append(Self.succeeded(answer) ? 303 : answer.status)
            }
            flood.stop.withLock { $0 = true }
            try await group.waitForAll()
            return real
        }
        #expect(outcomes == Array(repeating: 303, count: 10), "real logins: \(outcomes)")
        let statuses = flood.statuses.withLock { $0 }
        // The flood was answered, and mostly without a password check.
        #expect(statuses.count > 20, "\(statuses.count) flood tries")
        #expect(statuses.filter { $0 == 401 }.count < statuses.count / 2, "checked \(statuses.filter { $0 == 401 }.count) of \(statuses.count)")
        #expect(statuses.allSatisfy { [401, 429].contains($0) }, "\(Set(statuses))")
    }

    /// What the flood's workers share.
    final class Flood: Sendable {
        let stop = Mutex(false)
        let statuses = Mutex<[Int]>([])
    }
}
