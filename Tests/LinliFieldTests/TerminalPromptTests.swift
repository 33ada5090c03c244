import Foundation
import LinliCore
import LinliTesting
import Testing

/// The PIN prompt as a person meets it, on a pseudo-terminal: Ctrl-C
/// cancels at no cost, and a PIN is typed twice when it is chosen.
@Suite struct TerminalPromptTests {
    @Test func ctrlCAtThePINPromptCancelsAndCountsNothing() async throws {
        let district = try await District()
        let linli = Programs.built("linli")
        let folder = district.folder.path("li")
        let attempts = folder + "/device.key.attempts"
        let add = ["add", "person", "grid=G1", "name=陈静", "residence_type=户籍人口", "--data", folder]
        // Twice: before, two cancels were two wrong PINs and locked the device.
        for _ in 0..<2 {
            let terminal = try PseudoTerminal(linli, add)
            try await terminal.waitFor("PIN")
            terminal.type("24\u{03}")
            #expect(try await terminal.exitStatus() == 130, "\(terminal.screen)")
            #expect(terminal.screen.contains("已取消") && terminal.screen.contains("cancelled"), "\(terminal.screen)")
            #expect(!FileManager.default.fileExists(atPath: attempts), "a cancel was counted as a wrong PIN")
        }
        // The right PIN, typed with a slip corrected by Backspace, works at once.
        let terminal = try PseudoTerminal(linli, add + ["--json"])
        try await terminal.waitFor("PIN")
        terminal.type("2469\u{7F}8\r")
        #expect(try await terminal.exitStatus() == 0, "\(terminal.screen)")
        #expect(terminal.screen.contains("\"id\""), "\(terminal.screen)")
        #expect(!terminal.screen.contains("2468"), "the PIN was echoed: \(terminal.screen)")
        // A wrong one is counted: the check above could see it.
        let wrong = try PseudoTerminal(linli, add)
        try await wrong.waitFor("PIN")
        wrong.type("1111\r")
        #expect(try await wrong.exitStatus() != 0)
        #expect(FileManager.default.fileExists(atPath: attempts))
    }

    @Test func aChosenPINIsTypedTwice() async throws {
        let folder = Fixtures.TemporaryDirectory()
        let terminal = try PseudoTerminal(Programs.built("linli"), ["init", "--label", "巡查手机", "--data", folder.path("phone")])
        var seen = try await terminal.waitFor("choose a PIN")
        terminal.type("1357\r")
        seen = try await terminal.waitFor("the same again", after: seen)
        terminal.type("1358\r")
        seen = try await terminal.waitFor("do not match", after: seen)
        seen = try await terminal.waitFor("choose a PIN", after: seen)
        terminal.type("13\r")
        seen = try await terminal.waitFor("at least 4", after: seen)
        seen = try await terminal.waitFor("choose a PIN", after: seen)
        terminal.type("1357\r")
        _ = try await terminal.waitFor("the same again", after: seen)
        terminal.type("1357\r")
        #expect(try await terminal.exitStatus() == 0, "\(terminal.screen)")
        #expect(FileManager.default.fileExists(atPath: folder.path("phone/request.json")))
    }

    @Test func ctrlCAtTheAuthorityPassphraseLeavesNoAuthority() async throws {
        let folder = Fixtures.TemporaryDirectory()
        let terminal = try PseudoTerminal(Programs.built("linli-admin"), [
            "authority", "init", "--dir", folder.path("authority"), "--administrator", "管理员", "--server", "http://127.0.0.1:8080",
            "--kdf", "interactive",
        ])
        try await terminal.waitFor("new authority passphrase")
        terminal.type("street office\u{03}")
        #expect(try await terminal.exitStatus() == 130, "\(terminal.screen)")
        let made = (try? FileManager.default.contentsOfDirectory(atPath: folder.path("authority"))) ?? []
        #expect(made.isEmpty, "a cancelled init left \(made)")
    }
}
