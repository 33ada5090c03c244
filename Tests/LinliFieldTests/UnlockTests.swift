import Foundation
import LinliCore
import LinliTesting
import Testing

/// `unlock` once a morning, no PIN at each command; `lock`, or the end of
/// the session, and the PIN is asked again. A kiosk unlocked by its
/// operator never asks a resident for it.
@Suite struct UnlockTests {
    @Test func anUnlockedDeviceAsksNoPINUntilItIsLockedOrExpires() async throws {
        let district = try await District()
        let runtime = Fixtures.TemporaryDirectory()
        let environment = ["XDG_RUNTIME_DIR": runtime.path("")]
        let linli = Programs.built("linli")
        let folder = district.folder.path("li")
        let add = ["add", "person", "grid=G1", "name=陈静", "residence_type=户籍人口", "--data", folder, "--json"]

        let unlocked = try Programs.run(linli, ["unlock", "--for", "1h"] + district.device("li"), environment: environment)
        #expect(unlocked.status == 0 && unlocked.output.contains("unlocked until"), "\(unlocked.output)\(unlocked.error)")
        // Memory-backed, this user's alone.
        let device = try (district.status("li")["device"] as? String) ?? ""
        let keyFile = runtime.path("linli/\(device).key")
        let mode = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int
        let folderMode = try FileManager.default.attributesOfItem(atPath: runtime.path("linli"))[.posixPermissions] as? Int
        #expect(mode == 0o600 && folderMode == 0o700, "\(String(describing: mode)) \(String(describing: folderMode))")

        // At a terminal, no PIN is asked.
        let work = try PseudoTerminal(linli, add, environment: environment)
        #expect(try await work.exitStatus() == 0, "\(work.screen)")
        #expect(!work.screen.contains("PIN") && work.screen.contains("\"id\""), "\(work.screen)")

        // Locked: the copy is wiped, the PIN is asked again.
        let locked = try Programs.run(linli, ["lock", "--data", folder], environment: environment)
        #expect(locked.status == 0 && locked.output.contains("locked"), "\(locked.output)")
        #expect(!FileManager.default.fileExists(atPath: keyFile))
        let asks = try PseudoTerminal(linli, add, environment: environment)
        try await asks.waitFor("PIN")
        asks.type("\u{03}")
        #expect(try await asks.exitStatus() == 130)

        // Expired: wiped by the next command, which asks for the PIN.
        _ = try Programs.run(linli, ["unlock", "--for", "1s"] + district.device("li"), environment: environment)
        try await Task.sleep(nanoseconds: 1_500_000_000)
        let expired = try Programs.run(linli, add, environment: environment)
        #expect(expired.status == 2 && expired.error.contains("no PIN given"), "\(expired.error)")
        #expect(!FileManager.default.fileExists(atPath: keyFile))
        // Bounded: at most 16 hours.
        let tooLong = try Programs.run(linli, ["unlock", "--for", "17h"] + district.device("li"), environment: environment)
        #expect(tooLong.status == 2, "\(tooLong.error)")
    }

    @Test func aKioskUnlockedByItsOperatorNeverAsksAResidentForThePIN() async throws {
        let district = try await District()
        let runtime = Fixtures.TemporaryDirectory()
        let environment = ["XDG_RUNTIME_DIR": runtime.path("")]
        let kiosk = Programs.built("linli-kiosk")
        let unlocked = try Programs.run(kiosk, ["unlock"] + district.device("kiosk"), environment: environment)
        #expect(unlocked.status == 0, "\(unlocked.error)")
        let signup = try PseudoTerminal(kiosk, ["signup", "name=陈静", "phone=13512345678", "address=幸福路15号", "skills=推拿",
                                                "--data", district.folder.path("kiosk")], environment: environment)
        #expect(try await signup.exitStatus() == 0, "\(signup.screen)")
        #expect(!signup.screen.contains("PIN"), "\(signup.screen)")
        let synced = try Programs.run(kiosk, ["sync", "--json", "--data", district.folder.path("kiosk")], environment: environment)
        #expect(synced.status == 0, "\(synced.error)")
        #expect((try synced.json() as? [String: Any])?["accepted"] as? Int == 1, "\(synced.output)")
    }

    @Test func aKioskSignUpLeavesNothingOfTheResidentOnTheScreen() async throws {
        let district = try await District()
        let runtime = Fixtures.TemporaryDirectory()
        let environment = ["XDG_RUNTIME_DIR": runtime.path("")]
        let kiosk = Programs.built("linli-kiosk")
        #expect(try Programs.run(kiosk, ["unlock"] + district.device("kiosk"), environment: environment).status == 0)
        let form = try PseudoTerminal(kiosk, ["signup", "-i", "--data", district.folder.path("kiosk")], environment: environment)
        var seen = 0
        for (prompt, answer) in [("姓名 name", "陈静"), ("联系电话 phone", "13512345678"), ("住址 address", "幸福路15号"),
                                 ("特长 skills", "推拿")] {
            seen = try await form.waitFor(prompt, after: seen)
            form.type(answer + "\r")
        }
        seen = try await form.waitFor("回执编号", after: seen)
        try await form.waitFor("press Enter", after: seen)
        form.type("\r")
        #expect(try await form.exitStatus() == 0, "\(form.screen)")
        #expect(!form.screen.contains("PIN"))
        // The screen was cleared (with its scrollback) after the form and
        // again after the receipt: nothing typed is left after the last clear.
        let clear = "\u{1B}[2J\u{1B}[3J"
        let parts = form.screen.components(separatedBy: clear)
        #expect(parts.count >= 3, "\(form.screen.debugDescription)")
        #expect(parts.dropFirst().allSatisfy { !$0.contains("13512345678") && !$0.contains("陈静") }, "\(form.screen.debugDescription)")
        #expect(parts[1].contains("回执编号"), "the receipt alone is shown between the clears: \(parts[1].debugDescription)")
        #expect(parts.last?.contains("回执编号") == false)
    }
}
