import Foundation
import LinliCore
import LinliCrypto
#if canImport(Glibc)
import Glibc
#endif

/// A device key unlocked for a working session (`linli unlock`), so the
/// PIN is typed once a morning and not at every command.
///
/// The unsealed key is kept in a file of its own in a folder in memory:
/// `$XDG_RUNTIME_DIR/linli` (the session's own tmpfs, removed at logout)
/// or else `/dev/shm/linli-UID`, the folder 0700 and the file 0600, both
/// checked to be the user's own before anything is read or written. The
/// file names its expiry; a command that finds it expired wipes it
/// (zeroes, then removes) and asks for the PIN, as `linli lock` does at
/// once. Why a file and not an agent process: docs/SECURITY.md.
public enum UnlockedKey {
    /// What the file holds, the seeds in base64.
    struct Stored: Codable {
        var device: String
        var expiresAtMilliseconds: Int64
        var key: String
        var previous: [String]
    }

    /// The folder, made when missing; refused when it is not the user's own.
    static func folder(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let base: String
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty, FileManager.default.fileExists(atPath: runtime) {
            base = (runtime as NSString).appendingPathComponent("linli")
        } else {
            base = "/dev/shm/linli-\(geteuid())"
        }
        if mkdir(base, 0o700) != 0, errno != EEXIST {
            throw LinliError(.storage, "cannot make \(base) for the unlocked key: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard lstat(base, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == geteuid(), info.st_mode & 0o077 == 0 else {
            throw LinliError(.storage, "\(base) is not a folder of this user's alone (mode 0700)",
                             hint: "remove it; linli makes it again as it must be")
        }
        return base
    }

    static func path(_ device: DeviceID, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        (try folder(environment) as NSString).appendingPathComponent("\(device.hex).key")
    }

    /// Keeps `key` (and the keys before a rotation) unlocked for `seconds`
    /// (1 to ``Limits/unlockSecondsMax``); returns when it expires.
    @discardableResult
    public static func save(device: DeviceID, key: SigningKey, previous: [SigningKey], seconds: Int, now: Date = Date()) throws -> Date {
        guard (1...Limits.unlockSecondsMax).contains(seconds) else {
            throw LinliError(.invalidInput, "a key is unlocked for 1 s to \(Limits.unlockSecondsMax / 3600) h, not \(seconds) s")
        }
        let expires = now.addingTimeInterval(Double(seconds))
        let seed = { (key: SigningKey) in key.seed.withUnsafeBytes { Data($0) }.base64EncodedString() }
        let stored = Stored(device: device.hex, expiresAtMilliseconds: Int64(expires.timeIntervalSince1970 * 1000), key: seed(key),
                            previous: previous.map(seed))
        var data = try JSONEncoder().encode(stored)
        defer { LinliCrypto.wipe(&data) }
        try AtomicFile.write(data, to: try path(device), permissions: 0o600)
        return expires
    }

    /// The unlocked key of `device` and its previous keys, or nil when none
    /// is unlocked or it expired (then the file is wiped).
    public static func load(device: DeviceID, now: Date = Date()) -> (key: SigningKey, previous: [SigningKey], expires: Date)? {
        guard let file = try? path(device) else { return nil }
        var info = stat()
        guard lstat(file, &info) == 0 else { return nil }
        guard (info.st_mode & S_IFMT) == S_IFREG, info.st_uid == geteuid(), info.st_mode & 0o077 == 0,
              info.st_size > 0, info.st_size <= Limits.unlockedKeyFileBytesMax,
              var data = FileManager.default.contents(atPath: file) else {
            wipe(device: device)
            return nil
        }
        defer { LinliCrypto.wipe(&data) }
        guard let stored = try? JSONDecoder().decode(Stored.self, from: data), stored.device == device.hex,
              stored.expiresAtMilliseconds > Int64(now.timeIntervalSince1970 * 1000) else {
            wipe(device: device)
            return nil
        }
        func key(_ text: String) -> SigningKey? {
            guard var seed = Data(base64Encoded: text), seed.count == SigningKey.seedBytes else { return nil }
            defer { LinliCrypto.wipe(&seed) }
            return SigningKey(seed: SecretBytes(copying: seed))
        }
        guard let current = key(stored.key) else { wipe(device: device); return nil }
        return (current, stored.previous.compactMap(key), Date(timeIntervalSince1970: Double(stored.expiresAtMilliseconds) / 1000))
    }

    /// Zeroes and removes the unlocked key of `device`; whether there was one.
    @discardableResult
    public static func wipe(device: DeviceID) -> Bool {
        guard let file = try? path(device) else { return false }
        let descriptor = open(file, O_WRONLY | O_NOFOLLOW)
        guard descriptor >= 0 else { return unlink(file) == 0 }
        var info = stat()
        if fstat(descriptor, &info) == 0, info.st_size > 0 {
            let zeros = [UInt8](repeating: 0, count: Int(info.st_size))
            _ = zeros.withUnsafeBytes { write(descriptor, $0.baseAddress, zeros.count) }
            fsync(descriptor)
        }
        close(descriptor)
        return unlink(file) == 0
    }
}
