import Foundation
#if canImport(Glibc)
import Glibc
#endif
import LinliCore

/// A sealed key on disk, with a limit on wrong passphrases.
///
/// After ``failuresBeforeDelay`` wrong passphrases in a row, each further
/// try must wait (30 s, doubling with each failure, at most an hour), so a
/// stolen phone's PIN cannot be guessed quickly. The count lives beside the
/// key (`KEY.attempts`) and is cleared by a right passphrase. A tampered
/// file is refused as damaged.
public enum SealedKeyFile {
    public static let failuresBeforeDelay = 3
    static let delaySecondsMax: Double = 3600

    struct Attempts: Codable {
        var failures: Int
        var lastFailure: Double
    }

    public static func write(_ sealed: SealedKey, to path: String) throws(LinliError) {
        try AtomicFile.write(sealed.encoded(), to: path, permissions: 0o600)
    }

    /// Opens the key at `path`; `now` is injectable for tests.
    public static func open(_ path: String, passphrase: String, now: Date = Date()) throws(LinliError) -> SigningKey {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw LinliError(.notFound, "cannot read the key file \(path)", hint: "check the path")
        }
        let sealed = try SealedKey.decode(data)
        let attemptsPath = path + ".attempts"
        var attempts = (try? JSONDecoder().decode(Attempts.self, from: Data(contentsOf: URL(fileURLWithPath: attemptsPath))))
            ?? Attempts(failures: 0, lastFailure: 0)
        if attempts.failures >= failuresBeforeDelay {
            let wait = min(delaySecondsMax, 30 * pow(2, Double(attempts.failures - failuresBeforeDelay)))
            let remaining = attempts.lastFailure + wait - now.timeIntervalSince1970
            if remaining > 0 {
                throw LinliError(.wrongPassphrase, "\(attempts.failures) wrong PINs or passphrases in a row; wait \(Int(remaining.rounded(.up))) seconds before trying again")
            }
        }
        do {
            let key = try sealed.open(passphrase: passphrase)
            try? FileManager.default.removeItem(atPath: attemptsPath)
            return key
        } catch {
            if error.code == .wrongPassphrase {
                attempts.failures += 1
                attempts.lastFailure = now.timeIntervalSince1970
                if let encoded = try? JSONEncoder().encode(attempts) { try? AtomicFile.write(encoded, to: attemptsPath, permissions: 0o600) }
                let left = failuresBeforeDelay - attempts.failures
                throw LinliError(.wrongPassphrase, error.message,
                                 hint: left > 0 ? "\(left) more tries before a delay" : "further tries must wait; the delay doubles with each failure")
            }
            throw error
        }
    }
}

/// Writes files so that a reader sees the old or the new content, never a
/// part: a temporary file in the same folder, then a rename.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, permissions: Int = 0o644) throws(LinliError) {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        do {
            try data.write(to: temporary)
            try FileManager.default.setAttributes([.posixPermissions: permissions], ofItemAtPath: temporary.path)
            // rename(2) replaces the target atomically.
            guard rename(temporary.path, path) == 0 else {
                throw LinliError(.storage, "cannot move the new \(url.lastPathComponent) into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw LinliError(.storage, "cannot write \(path): \(error.localizedDescription)", hint: "check that the folder exists and is writable")
        }
    }
}
