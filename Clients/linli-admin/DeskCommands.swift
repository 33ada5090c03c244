import ArgumentParser
import Foundation
import LinliCLI
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore

/// `linli-admin desk`: the staff accounts of the web desk (`/desk` on the
/// server). Each account is a device of its own with a staff certificate,
/// whose key is sealed under the staff member's password: the server keeps
/// the accounts file but can sign as a staff member only while that person
/// is logged in.
struct DeskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "desk", abstract: "Staff accounts of the conflict desk web page.",
        discussion: """
            After `desk add`, run `linli-admin sync` so the server learns the new certificate, and start \
            linli-server with --desk-accounts FILE (it reads the file at every login: no restart needed for \
            later accounts). To take an account away, revoke its device: `linli-admin device revoke DEVICE --all`.
            """,
        subcommands: [Add.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a staff account: a new device certified as staff, its key sealed under the password.")
        @OptionGroup var options: AuthorityOptions
        @Option(help: "The staff member's user name, shown on the page and written into every resolution.") var user: String
        @Option(help: "A file whose first line is the staff member's password (8 characters or more); without it, a prompt.")
        var passwordFile: String?
        @Option(help: "The desk accounts file the server reads (made when missing).") var accounts: String

        func run() throws {
            try guarded {
                let name = user.trimmingCharacters(in: .whitespacesAndNewlines)
                let existing = try DeskAccounts.read(accounts)
                if let taken = existing.first(where: { $0.user == name }) {
                    throw LinliError(.invalidInput, "\(accounts) already has an account named \(name) (device \(taken.device))",
                                     hint: "choose another user name; to replace the account, revoke its device first")
                }
                let password = try DeskPassword.read(file: passwordFile)
                let (account, key) = try DeskAccount.make(user: name, password: password)
                guard let device = account.deviceID else {
                    throw LinliError(.damagedFile, "the new desk account names no device")
                }
                let (store, identity, _) = try options.open()
                try store.issueCertificate(as: identity, device: device, publicKey: key.publicKey, role: .staff, grids: [],
                                           label: "desk \(name)")
                do {
                    try AtomicFile.write(try DeskAccounts.encoded(existing + [account]), to: accounts, permissions: 0o600)
                } catch let error as LinliError {
                    throw LinliError(error.code, "device \(device.hex) was certified as staff, but \(error.message)",
                                     hint: "revoke it with `linli-admin device revoke \(device.hex) --all --reason \"account not written\"` and add the account again")
                }
                emit(options.json, ["user": name, "device": device.hex, "role": Role.staff.rawValue, "accounts": accounts],
                     text: """
                        desk account \(name): device \(device.hex), certified as staff; written to \(accounts)
                          next: `linli-admin sync --server URL` so the server learns the certificate
                        """)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the desk accounts, with each device's certificate when the authority folder is at hand.")
        @Option(help: "The desk accounts file.") var accounts: String
        @Option(name: .customLong("dir"), help: "The authority folder, to show each device's certificate (optional).") var directory = "authority"
        @Flag(help: "Print one JSON object.") var json = false

        func run() throws {
            try guarded {
                guard FileManager.default.fileExists(atPath: accounts) else {
                    throw LinliError(.notFound, "there is no desk accounts file \(accounts)", hint: "make one with `linli-admin desk add`")
                }
                let found = try DeskAccounts.read(accounts)
                // The certificate of each account's device, when the authority's
                // replica is here (no key needed: it is only read).
                var states: [String: String] = [:]
                let folder = try AuthorityOptions.parse(["--dir", directory])
                if let settings = try? folder.settings(), let root = PublicKey(hex: settings.rootPublicKey),
                   FileManager.default.fileExists(atPath: folder.replicaPath) {
                    let store = try ReplicaStore(path: folder.replicaPath, schema: AuthoritySettings.schema, authority: root)
                    let certificates = try store.certificates()
                    let revocations = try store.revocations()
                    for account in found {
                        guard let device = account.deviceID else { states[account.user] = "no device"; continue }
                        if revocations[device] != nil {
                            states[account.user] = "revoked"
                        } else if let current = certificates.filter({ $0.device == device }).max(by: { $0.validFromSeq < $1.validFromSeq }) {
                            states[account.user] = current.role == .staff ? "staff" : "certified as \(current.role.rawValue), not staff"
                        } else {
                            states[account.user] = "no certificate"
                        }
                    }
                }
                let rows: [[String: Any]] = found.map { account in
                    var row: [String: Any] = ["user": account.user, "device": account.device]
                    if let state = states[account.user] { row["certificate"] = state }
                    return row
                }
                emit(json, ["accounts": rows], text: found.isEmpty ? "no desk accounts in \(accounts)" : found.map { account in
                    "\(account.device)  \(account.user)" + (states[account.user].map { "  \($0)" } ?? "")
                }.joined(separator: "\n"))
            }
        }
    }
}

/// A staff member's password: the first line of a file, or typed twice at
/// a prompt. Never from LINLI_PASSPHRASE, which is the authority's.
enum DeskPassword {
    static func read(file: String?) throws -> String {
        let password: String
        if let file {
            password = try Passphrase.firstLine(of: file, what: "password")
        } else {
            do {
                guard let chosen = try SecretPrompt.choose("staff password: ", again: "the same password again: ",
                                                           minimumLength: PasswordHash.passwordCharactersMin) else {
                    throw LinliError(.invalidInput, "no staff password given", hint: "use --password-file FILE (its first line is the password)")
                }
                password = chosen
            } catch is SecretPrompt.Cancelled {
                throw SecretPrompt.cancelled()
            }
        }
        guard password.count >= PasswordHash.passwordCharactersMin else {
            throw LinliError(.invalidInput, "a staff password needs at least \(PasswordHash.passwordCharactersMin) characters",
                             hint: "a phrase of a few words is easier to remember and harder to guess")
        }
        return password
    }
}
