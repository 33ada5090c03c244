import ArgumentParser
import Foundation
import LinliCLI
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore

@main
struct LinliAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linli-admin",
        abstract: "Administer a Linli deployment: the trust authority, devices, grids, audits.",
        discussion: """
            Works fully offline, by files. The authority folder (--dir) holds the sealed authority key \
            (authority.key), the authority's replica of the trust records (authority.sqlite), its settings \
            (authority.json) and the grid register (grids.json). Passphrases come from --passphrase-file, \
            the LINLI_PASSPHRASE environment variable, or a prompt.
            """,
        subcommands: [AuthorityCommand.self, GridCommand.self, DeviceCommand.self, DeskCommand.self, AuditCommand.self, SyncCommand.self])
}

/// Options every command that touches the authority folder shares.
struct AuthorityOptions: ParsableArguments {
    @Option(name: .customLong("dir"), help: "The authority folder.") var directory = "authority"
    @Option(help: "A file whose first line is the authority passphrase.") var passphraseFile: String?
    @Flag(help: "Print one JSON object.") var json = false

    var keyPath: String { path("authority.key") }
    /// The key before the latest rotation, sealed with the current
    /// passphrase: the server knows only it until the rotation reaches it.
    var previousKeyPath: String { path("authority.previous.key") }
    var replicaPath: String { path("authority.sqlite") }
    var settingsPath: String { path("authority.json") }
    var gridsPath: String { path("grids.json") }
    /// Who each device was issued to. The administrator's own record, not a
    /// trust record: replicas neither need it nor could verify it, and a
    /// new certificate field would be refused by replicas of older versions.
    var usersPath: String { path("users.json") }
    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    func passphrase(prompt: String = "authority passphrase: ", choosing: Bool = false) throws -> String {
        try Passphrase.read(file: passphraseFile, prompt: prompt, choosing: choosing)
    }

    func settings() throws -> AuthoritySettings {
        guard let data = FileManager.default.contents(atPath: settingsPath) else {
            throw LinliError(.notFound, "there is no authority in \(directory)", hint: "run `linli-admin authority init --dir \(directory) --server https://HOST` first")
        }
        do { return try JSONDecoder().decode(AuthoritySettings.self, from: data) } catch {
            throw LinliError(.damagedFile, "\(settingsPath) is damaged: \(error)")
        }
    }

    /// The authority's replica, read without the passphrase (for lists and
    /// the administrator's own records).
    func replica(_ settings: AuthoritySettings) throws -> ReplicaStore {
        try ReplicaStore(path: replicaPath, schema: AuthoritySettings.schema, authority: PublicKey(hex: settings.rootPublicKey))
    }

    /// The authority's replica and its identity, with the key unsealed.
    func open() throws -> (store: ReplicaStore, identity: DeviceIdentity, settings: AuthoritySettings) {
        let opened = try open(server: nil, caFile: nil)
        return (opened.store, opened.identity, opened.settings)
    }

    /// The same, and with `server` a client of it for the authority: after
    /// a rotation it signs requests with the key before it while the server
    /// has not learned the rotation. One passphrase unseals both keys.
    func open(server: String?, caFile: String?) throws
        -> (store: ReplicaStore, identity: DeviceIdentity, settings: AuthoritySettings, client: SyncClient?) {
        let url = try server.map { text -> URL in
            guard let url = URL(string: text), url.scheme == "http" || url.scheme == "https" else {
                throw LinliError(.invalidInput, "--server must be an http:// or https:// address, not \(text)")
            }
            return url
        }
        let settings = try settings()
        guard let root = PublicKey(hex: settings.rootPublicKey), let device = DeviceID(hex: settings.device) else {
            throw LinliError(.damagedFile, "\(settingsPath) is damaged: the root key or device id has the wrong form")
        }
        let secret = try passphrase()
        let key = try SealedKeyFile.open(keyPath, passphrase: secret)
        let store = try ReplicaStore(path: replicaPath, schema: AuthoritySettings.schema, authority: root)
        let identity = DeviceIdentity(device: device, key: key, user: settings.administrator)
        guard let url else { return (store, identity, settings, nil) }
        let previous = FileManager.default.fileExists(atPath: previousKeyPath) ? [try SealedKeyFile.open(previousKeyPath, passphrase: secret)] : []
        let client = SyncClient(store: store, identity: identity, connection: ServerConnection(url: url, certificateAuthorityFile: caFile),
                                previousKeys: previous)
        return (store, identity, settings, client)
    }

    /// The person each device (by hex id) was issued to.
    func users() throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: usersPath) else { return [:] }
        do { return try JSONDecoder().decode([String: String].self, from: data) } catch {
            throw LinliError(.damagedFile, "\(usersPath) is damaged: \(error)", hint: "restore it from the authority folder's backup")
        }
    }

    func setUser(_ user: String, of device: DeviceID) throws {
        let name = user.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.utf8.count <= Limits.userBytesMax, !name.contains(where: \.isNewline) else {
            throw LinliError(.invalidInput, "a user name is one line of 1 to \(Limits.userBytesMax) bytes, not \"\(user)\"")
        }
        var users = try users()
        users[device.hex] = name
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(users), to: usersPath)
    }

    func grids() throws -> [GridEntry] {
        guard let data = FileManager.default.contents(atPath: gridsPath) else { return [] }
        do { return try JSONDecoder().decode([GridEntry].self, from: data) } catch {
            throw LinliError(.damagedFile, "\(gridsPath) is damaged: \(error)")
        }
    }
}

struct AuthoritySettings: Codable {
    /// The authority replica holds only trust records.
    static let schema = Schema(name: "trust", version: 1, tables: [])
    var rootPublicKey: String
    var currentPublicKey: String
    var device: String
    var administrator: String
    var server: String
    var rotations: Int

    enum CodingKeys: String, CodingKey {
        case device, administrator, server, rotations
        case rootPublicKey = "root_public_key"
        case currentPublicKey = "current_public_key"
    }

    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(self), to: path)
    }
}

struct GridEntry: Codable, Equatable {
    var id: String
    var label: String
}

enum Passphrase {
    /// The first line of a secret's file (a passphrase or password file).
    static func firstLine(of file: String, what: String) throws -> String {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw LinliError(.notFound, "cannot read the \(what) file \(file)")
        }
        return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
    }

    /// The passphrase from `file`, else `LINLI_PASSPHRASE`, else typed at
    /// the terminal (twice when `choosing` it). Ctrl-C at the prompt ends
    /// the command with nothing changed.
    static func read(file: String?, prompt: String, choosing: Bool = false) throws -> String {
        if let file { return try firstLine(of: file, what: "passphrase") }
        if let value = ProcessInfo.processInfo.environment["LINLI_PASSPHRASE"] { return value }
        do {
            guard let entered = try choosing ? SecretPrompt.choose(prompt, minimumLength: 12) : SecretPrompt.read(prompt) else {
                throw LinliError(.invalidInput, "no passphrase given", hint: "use --passphrase-file FILE or set LINLI_PASSPHRASE")
            }
            return entered
        } catch is SecretPrompt.Cancelled {
            throw SecretPrompt.cancelled()
        }
    }
}

/// Prints a result as JSON or as lines of text.
func emit(_ json: Bool, _ object: [String: Any], text: String) {
    if json {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data()
        print(String(decoding: data, as: UTF8.self))
    } else {
        print(text)
    }
}

/// Runs a command body; a `LinliError` becomes a message on standard error
/// and exit status 1 (2 for bad input), never a stack trace.
func guarded(_ body: () throws -> Void) throws {
    do { try body() } catch let error as LinliError { throw exitCode(reporting: error) }
}

/// Runs an async command body the way ``guarded(_:)`` runs a synchronous one.
func guardedAsync(_ body: () async throws -> Void) async throws {
    do { try await body() } catch let error as LinliError { throw exitCode(reporting: error) }
}

/// Prints a `LinliError` for the person at the terminal and gives the exit
/// status: 2 for bad input, 1 for anything else.
func exitCode(reporting error: LinliError) -> ExitCode {
    FileHandle.standardError.write(Data("linli-admin: \(error.message)\(error.hint.map { "\n  \($0)" } ?? "")\n".utf8))
    return ExitCode(error.code == .invalidInput || error.code == .malformed ? 2 : 1)
}
