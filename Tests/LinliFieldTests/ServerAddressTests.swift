import Foundation
import Glibc
import LinliCore
import LinliTesting
import Testing

/// The server's address is a choice the administrator makes once, and a
/// device can change it; a wrong one is named, with the fix, at the first
/// sync that cannot reach it.
@Suite struct ServerAddressTests {
    @Test func theAddressIsChosenShownChangedAndNamedWhenUnreachable() async throws {
        let district = try await District()
        // No silent default: the authority needs the address devices will use.
        let folder = Fixtures.TemporaryDirectory()
        try "a long authority passphrase\n".write(toFile: folder.path("pass"), atomically: true, encoding: .utf8)
        let unaddressed = try Programs.run(Programs.built("linli-admin"), ["authority", "init", "--dir", folder.path("authority"),
                                                                           "--passphrase-file", folder.path("pass"), "--kdf", "interactive"])
        #expect(unaddressed.status != 0 && unaddressed.error.contains("--server"), "\(unaddressed.error)")
        let nonsense = try Programs.run(Programs.built("linli-admin"), ["authority", "init", "--dir", folder.path("authority"),
                                                                        "--passphrase-file", folder.path("pass"), "--server", "linli.example"])
        #expect(nonsense.status != 0 && nonsense.error.contains("https://HOST"), "\(nonsense.error)")
        #expect(!FileManager.default.fileExists(atPath: folder.path("authority/authority.json")), "nothing was created")

        // The device shows the address its bundle named.
        let shown = try district.json("li", ["server"]) as? [String: Any]
        #expect(shown?["server"] as? String == district.url)

        // Something that is not an address is refused and not remembered.
        let refused = try district.run("li", ["server", "幸福路 12 号"])
        #expect(refused.status != 0 && refused.error.contains("is not a server address"), "\(refused.error)")
        #expect((try district.json("li", ["server"]) as? [String: Any])?["server"] as? String == district.url)

        // A wrong address: the sync fails at once, naming the address and the fix.
        let (listener, closed) = try CuttingProxy.listenOnLoopback()
        _ = Glibc.close(listener) // nothing listens there now
        let wrong = "http://127.0.0.1:\(closed)"
        #expect(try district.run("li", ["server", wrong]).status == 0)
        let started = Date()
        let failed = try district.run("li", ["sync", "--attempts", "1", "--quiet"])
        let took = Date().timeIntervalSince(started)
        #expect(failed.status != 0)
        // A refused connection fails the attempt at once, not after the 10 s connect timeout.
        #expect(took < 8, "a refused connection took \(took) s to report")
        #expect(failed.error.contains(wrong) && failed.error.contains("linli server URL"), "\(failed.error)")

        // Set right, the next sync goes through.
        #expect(try district.run("li", ["server", district.url]).status == 0)

        // While another sync of the device runs (it holds the folder's
        // sync lock), a second one says so and does nothing.
        let lock = open(district.folder.path("li/sync.lock"), O_RDWR | O_CREAT, 0o600)
        #expect(lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) == 0)
        let second = try district.run("li", ["sync", "--quiet"])
        #expect(second.status != 0 && second.error.contains("another sync of this device is running"), "\(second.error)")
        flock(lock, LOCK_UN)
        _ = Glibc.close(lock)

        let report = try district.sync("li")
        #expect(report["in_step"] as? Bool == true, "\(report)")
    }
}
