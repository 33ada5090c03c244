import CSodium
import Foundation
import LinliCore

/// Staff passwords for the web desk, stored as libsodium's Argon2id string
/// hash (`$argon2id$v=19$m=…,t=…,p=1$salt$hash`): the algorithm, its limits
/// and the salt travel with the hash, so stronger limits later need no
/// change of format.
public enum PasswordHash {
    /// Characters a staff password must have at least.
    public static let passwordCharactersMin = 8

    /// The Argon2id hash of `password`, with libsodium's interactive limits
    /// (64 MiB, 2 passes): a login costs about a tenth of a second.
    public static func hash(_ password: String) throws(LinliError) -> String {
        guard password.count >= passwordCharactersMin else {
            throw LinliError(.invalidInput, "a staff password needs at least \(passwordCharactersMin) characters")
        }
        Sodium.ensureInitialized()
        var out = [CChar](repeating: 0, count: Int(crypto_pwhash_STRBYTES))
        let bytes = Array(password.utf8)
        let status = bytes.withUnsafeBufferPointer { pointer in
            pointer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) { chars in
                crypto_pwhash_str_alg(&out, chars, UInt64(bytes.count), UInt64(crypto_pwhash_OPSLIMIT_INTERACTIVE),
                                      Int(crypto_pwhash_MEMLIMIT_INTERACTIVE), crypto_pwhash_ALG_ARGON2ID13)
            }
        }
        guard status == 0 else {
            throw LinliError(.storage, "hashing the password ran out of memory", hint: "free memory and try again")
        }
        return String(cString: out)
    }

    /// Whether `password` matches `stored`, in constant time; false for a
    /// hash that is not an Argon2id string.
    public static func verify(_ password: String, against stored: String) -> Bool {
        guard stored.hasPrefix("$argon2id$") else { return false }
        Sodium.ensureInitialized()
        var hash = Array(stored.utf8CString)
        let bytes = Array(password.utf8)
        return bytes.withUnsafeBufferPointer { pointer in
            let base = pointer.baseAddress ?? UnsafePointer<UInt8>(bitPattern: 1)!
            return base.withMemoryRebound(to: CChar.self, capacity: max(1, bytes.count)) { chars in
                crypto_pwhash_str_verify(&hash, chars, UInt64(bytes.count)) == 0
            }
        }
    }
}
