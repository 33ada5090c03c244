import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore

/// The schema packs clients carry.
public enum SchemaPacks {
    /// The community schema pack (Protocol/schema/community-v1.json),
    /// embedded so a client records with the forms it was built with.
    public static let community: Schema = {
        do {
            let schema = try JSONDecoder().decode(Schema.self, from: Data(communityText.utf8))
            try schema.validate()
            return schema
        } catch {
            // The text is generated from a file the tests decode and check.
            preconditionFailure("the embedded community schema pack is invalid: \(error)")
        }
    }()

    /// A schema pack from a file, checked.
    public static func load(file: String) throws -> Schema {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw LinliError(.notFound, "cannot read the schema pack \(file)")
        }
        let schema: Schema
        do { schema = try JSONDecoder().decode(Schema.self, from: data) } catch {
            throw LinliError(.malformed, "\(file) is not a readable schema pack: \(error)")
        }
        try schema.validate()
        return schema
    }
}

/// What a field device (an inspector's terminal, a kiosk, a staff laptop)
/// keeps about itself in its folder, beside its sealed key and replica.
public struct DeviceSettings: Codable, Sendable, Equatable {
    public var device: String
    public var role: String
    public var grids: [String]
    public var server: String
    public var authorityPublicKey: String
    /// The person who signs this device's changes (the inspector's name).
    public var user: String
    public var label: String
    /// A PEM file of the certificate authority the server's TLS certificate
    /// chains to, when it is a private one.
    public var certificateAuthorityFile: String?
    /// A schema pack file in place of the built-in one (a newer version).
    public var schemaFile: String?

    enum CodingKeys: String, CodingKey {
        case device, role, grids, server, user, label
        case authorityPublicKey = "authority_public_key"
        case certificateAuthorityFile = "ca_file"
        case schemaFile = "schema_file"
    }
}

/// A field device's folder:
///
/// - `device.key`: the device's signing key, sealed with the PIN (Argon2id);
/// - `request.json`: the enrolment request handed to the administrator;
/// - `bundle.json`: the enrolment bundle handed back (certificate and the
///   trust records it rests on);
/// - `device.json`: ``DeviceSettings``;
/// - `replica.sqlite`: the replica, made at the first command that needs it
///   (or by the first sync, from the server's snapshot).
public final class FieldDevice: Sendable {
    public let folder: String
    public let settings: DeviceSettings
    public let schema: Schema
    public let device: DeviceID
    public let role: Role
    public let authority: PublicKey

    public static func keyPath(_ folder: String) -> String { path(folder, "device.key") }
    /// The key before the latest rotation, kept to sign requests until the
    /// server has the new key's certificate.
    public static func previousKeyPath(_ folder: String) -> String { path(folder, "device.previous.key") }
    public static func rotationRequestPath(_ folder: String) -> String { path(folder, "rotation-request.json") }
    public static func requestPath(_ folder: String) -> String { path(folder, "request.json") }
    static func bundlePath(_ folder: String) -> String { path(folder, "bundle.json") }
    static func settingsPath(_ folder: String) -> String { path(folder, "device.json") }
    public var replicaPath: String { Self.path(folder, "replica.sqlite") }
    static func path(_ folder: String, _ name: String) -> String { (folder as NSString).appendingPathComponent(name) }

    // MARK: Enrolment

    /// Makes the device's key pair, seals the private key with `pin`, and
    /// writes the enrolment request for the administrator. Refuses to
    /// overwrite an existing key.
    public static func prepare(folder: String, label: String, pin: String) throws -> EnrolmentRequest {
        guard pin.count >= 4 else {
            throw LinliError(.invalidInput, "the PIN must have at least 4 characters")
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if FileManager.default.fileExists(atPath: keyPath(folder)) {
            throw LinliError(.invalidInput, "this device already has a key in \(folder); refusing to overwrite it",
                             hint: "use another --data folder for another device")
        }
        let key = SigningKey.generate()
        let request = EnrolmentRequest.make(device: DeviceID.random(), key: key, label: label)
        try SealedKeyFile.write(try SealedKey.seal(key, passphrase: pin, label: label, strength: .interactive), to: keyPath(folder))
        try AtomicFile.write(request.encoded(), to: requestPath(folder))
        return request
    }

    /// Imports the enrolment bundle the administrator made from this
    /// device's request: checks that it certifies this device's own key
    /// with a role in `roles`, verifying every trust record against the
    /// authority key it names.
    @discardableResult
    public static func enrol(folder: String, bundle data: Data, user: String, roles: Set<Role>,
                             certificateAuthorityFile: String? = nil) throws -> FieldDevice {
        guard let requestData = FileManager.default.contents(atPath: requestPath(folder)) else {
            throw LinliError(.notFound, "there is no enrolment request in \(folder)", hint: "make one first with `init`")
        }
        let (device, key) = try EnrolmentRequest.decode(requestData).verified()
        let bundle = try EnrolmentBundle.decode(data)
        guard bundle.device == device.hex else {
            throw LinliError(.invalidInput, "this bundle is for device \(bundle.device), not this device (\(device.hex))",
                             hint: "ask the administrator for the bundle made from this device's request")
        }
        guard let role = Role(rawValue: bundle.role), roles.contains(role) else {
            throw LinliError(.invalidInput, "this bundle enrols a \(bundle.role); this client takes \(roles.map(\.rawValue).sorted().joined(separator: " or "))")
        }
        guard !user.trimmingCharacters(in: .whitespaces).isEmpty, user.utf8.count <= Limits.nameBytesMax else {
            throw LinliError(.invalidInput, "give the name of the person using this device (--user), at most \(Limits.nameBytesMax) bytes")
        }
        let authority = PublicKey(hex: bundle.authorityPublicKey)!
        // Verify the trust records as any replica would, and that they
        // certify this very key.
        let scratch = try ReplicaStore(path: nil, schema: Schema(name: "trust", version: 1, tables: []), authority: authority)
        for outcome in try scratch.apply(bundle.trustRecords.compactMap(Hex.decodeData)) {
            if let error = outcome.error {
                throw LinliError(error.code, "a trust record in the bundle does not verify: \(error.message)", hint: "ask the administrator for a new bundle")
            }
        }
        let access = try scratch.access(device)
        guard access.key == key else {
            throw LinliError(.badSignature, "the bundle certifies another key for this device", hint: "ask the administrator for the bundle made from this device's request")
        }
        if FileManager.default.fileExists(atPath: settingsPath(folder)) {
            throw LinliError(.invalidInput, "this device is already enrolled (\(settingsPath(folder)) exists)")
        }
        let settings = DeviceSettings(
            device: device.hex, role: role.rawValue, grids: access.grids.sorted(), server: bundle.server,
            authorityPublicKey: bundle.authorityPublicKey, user: user, label: "", certificateAuthorityFile: certificateAuthorityFile,
            schemaFile: nil)
        try AtomicFile.write(data, to: bundlePath(folder), permissions: 0o600)
        try write(settings, folder: folder)
        return try open(folder: folder)
    }

    static func write(_ settings: DeviceSettings, folder: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(settings), to: settingsPath(folder), permissions: 0o600)
    }

    /// Opens an enrolled device's folder.
    public static func open(folder: String) throws -> FieldDevice {
        guard let data = FileManager.default.contents(atPath: settingsPath(folder)) else {
            throw LinliError(.notFound, "no enrolled device in \(folder)",
                             hint: "enrol it first: `init` makes the request, `enrol BUNDLE` imports the administrator's answer (or give --data)")
        }
        let settings: DeviceSettings
        do { settings = try JSONDecoder().decode(DeviceSettings.self, from: data) } catch {
            throw LinliError(.damagedFile, "\(settingsPath(folder)) is damaged: \(error)")
        }
        return try FieldDevice(folder: folder, settings: settings)
    }

    init(folder: String, settings: DeviceSettings) throws {
        guard let device = DeviceID(hex: settings.device), let role = Role(rawValue: settings.role),
              let authority = PublicKey(hex: settings.authorityPublicKey) else {
            throw LinliError(.damagedFile, "\(Self.settingsPath(folder)) is damaged: the device id, role or authority key has the wrong form")
        }
        self.folder = folder
        self.settings = settings
        self.device = device
        self.role = role
        self.authority = authority
        self.schema = try settings.schemaFile.map { try SchemaPacks.load(file: $0) } ?? SchemaPacks.community
    }

    /// Uses a newer version of the schema pack from now on. Only additions
    /// are allowed (``Schema/checkUpgrade(from:)``), so every value the
    /// replica holds stays; values it kept from newer devices' change sets
    /// show as soon as it declares their fields.
    public func upgradeSchema(file: String) throws -> FieldDevice {
        let newer = try SchemaPacks.load(file: file)
        try newer.checkUpgrade(from: schema)
        let absolute = (file as NSString).isAbsolutePath ? file : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(file)
        var changed = settings
        changed.schemaFile = absolute
        try Self.write(changed, folder: folder)
        return try FieldDevice(folder: folder, settings: changed)
    }

    // MARK: Use

    /// The device's signing identity: unseals the key with `pin`.
    public func identity(pin: String) throws -> DeviceIdentity {
        let key = try SealedKeyFile.open(Self.keyPath(folder), passphrase: pin)
        return DeviceIdentity(device: device, key: key, user: settings.user)
    }

    /// The key before the latest rotation, when there was one.
    public func previousKeys(pin: String) throws -> [SigningKey] {
        guard FileManager.default.fileExists(atPath: Self.previousKeyPath(folder)) else { return [] }
        return [try SealedKeyFile.open(Self.previousKeyPath(folder), passphrase: pin)]
    }

    /// Replaces the device's key (a phone whose key may have been copied,
    /// or a yearly renewal): makes a new key, writes a rotation request
    /// signed by both keys that names the device's next sequence number
    /// as the first the new key signs, and signs with the new key from now
    /// on. Change sets it makes before the administrator's certificate
    /// reaches the server wait there (unknown key) and are taken when it
    /// arrives; nothing is lost. The old key is kept, sealed, to sign
    /// requests until then.
    public func rotateKey(pin: String) throws -> EnrolmentRequest {
        let current = try identity(pin: pin)
        let store = try store()
        let next = (try store.heads()[device]?.seq ?? 0) + 1
        if FileManager.default.fileExists(atPath: Self.rotationRequestPath(folder)) {
            throw LinliError(.invalidInput, "a key rotation is already waiting in \(Self.rotationRequestPath(folder))",
                             hint: "hand that request to the administrator; once the device has synced with the new certificate, remove the file to rotate again")
        }
        let key = SigningKey.generate()
        let request = EnrolmentRequest.make(device: device, key: key, label: settings.user, previous: current.key, fromSeq: next)
        let sealedNew = try SealedKey.seal(key, passphrase: pin, label: settings.user, strength: .interactive)
        let sealedOld = try SealedKey.seal(current.key, passphrase: pin, label: settings.user + " (before rotation)", strength: .interactive)
        try AtomicFile.write(request.encoded(), to: Self.rotationRequestPath(folder))
        try SealedKeyFile.write(sealedOld, to: Self.previousKeyPath(folder))
        try SealedKeyFile.write(sealedNew, to: Self.keyPath(folder))
        return request
    }

    public var hasReplica: Bool { FileManager.default.fileExists(atPath: replicaPath) }

    /// The replica, made (with the bundle's trust records) if there is none
    /// yet: everything but sync works before the first sync.
    public func store() throws -> ReplicaStore {
        let fresh = !hasReplica
        let store = try ReplicaStore(path: replicaPath, schema: schema, authority: authority)
        if fresh { try importBundleRecords(into: store) }
        return store
    }

    private func importBundleRecords(into store: ReplicaStore) throws {
        guard let data = FileManager.default.contents(atPath: Self.bundlePath(folder)) else { return }
        let bundle = try EnrolmentBundle.decode(data)
        for outcome in try store.apply(bundle.trustRecords.compactMap(Hex.decodeData)) {
            if let error = outcome.error { throw LinliError(error.code, "a trust record in the bundle does not verify: \(error.message)") }
        }
    }

    /// What this device may write, from the certificates its replica holds.
    public func access(_ store: ReplicaStore) throws -> DeviceAccess { try store.access(device) }

    public var connection: ServerConnection {
        get throws {
            guard let url = URL(string: settings.server), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw LinliError(.invalidInput, "the server address \(settings.server) is not an http(s) URL", hint: "give it with --server")
            }
            return ServerConnection(url: url, certificateAuthorityFile: settings.certificateAuthorityFile)
        }
    }

    /// Changes the server address (and its certificate authority file).
    /// Refuses what cannot be a server's address before it is remembered.
    public static func checkServerAddress(_ text: String) throws(LinliError) {
        guard let url = URL(string: text), url.scheme == "https" || url.scheme == "http", let host = url.host, !host.isEmpty,
              url.query == nil, url.user == nil else {
            throw LinliError(.invalidInput, "\(text) is not a server address",
                             hint: "give it as https://HOST or https://HOST:PORT, e.g. https://linli.example.gov.cn")
        }
    }

    public func pointing(to server: String?, certificateAuthorityFile: String?) throws -> FieldDevice {
        guard server != nil || certificateAuthorityFile != nil else { return self }
        var changed = settings
        if let server {
            try Self.checkServerAddress(server)
            changed.server = server
        }
        if let certificateAuthorityFile { changed.certificateAuthorityFile = certificateAuthorityFile }
        try Self.write(changed, folder: folder)
        return try FieldDevice(folder: folder, settings: changed)
    }

    /// Pushes this device's change sets and pulls what its scopes gained.
    /// A device without a replica bootstraps from the server's signed
    /// snapshot first; a cut transfer resumes at the next sync from the
    /// last page kept.
    public func sync(identity: DeviceIdentity, previousKeys: [SigningKey] = [], attemptsMax: Int = 8,
                     progress: @escaping @Sendable (SyncProgress) -> Void = { _ in }) async throws -> SyncReport {
        let lock = try SyncLock(folder: folder)
        defer { lock.release() }
        return try await syncHoldingTheLock(identity: identity, previousKeys: previousKeys, attemptsMax: attemptsMax, progress: progress)
    }

    private func syncHoldingTheLock(identity: DeviceIdentity, previousKeys: [SigningKey], attemptsMax: Int,
                                    progress: @escaping @Sendable (SyncProgress) -> Void) async throws -> SyncReport {
        let connection = try connection
        var bootstrapped = false
        if !hasReplica {
            do {
                let store = try await SyncClient.bootstrap(connection: connection, identity: identity, authority: authority, schema: schema,
                                                           at: replicaPath, progress: progress)
                try importBundleRecords(into: store)
                bootstrapped = true
            } catch let error as LinliError where [.unavailable, .notFound].contains(error.code) {
                // The server offers no snapshot: pull everything instead.
                progress(SyncProgress(phase: .snapshot, done: 0, cursor: 0, message: "no snapshot (\(error.message)); pulling from the start"))
            }
        }
        let store = try store()
        let client = SyncClient(store: store, identity: identity, connection: connection, attemptsMax: attemptsMax, previousKeys: previousKeys)
        var report = try await client.sync(progress: progress)
        report.bootstrapped = bootstrapped
        try store.setClientValue("last_sync", String(UInt64(Date().timeIntervalSince1970 * 1000)))
        return report
    }

    /// The name under which this device's server cursor and
    /// acknowledgements are kept.
    public var peerName: String { SyncClient.cursorName(URL(string: settings.server) ?? URL(fileURLWithPath: "/")) }
}

/// One sync at a time per device folder: an advisory lock on `sync.lock`
/// (flock), let go when the process ends however it ends. A second sync
/// is told that one is running instead of racing the first.
struct SyncLock {
    let lock: FolderLock

    init(folder: String) throws {
        lock = try FolderLock(path: (folder as NSString).appendingPathComponent("sync.lock"),
                              busy: LinliError(.unavailable, "another sync of this device is running", hint: "wait for it to finish; nothing is lost"))
    }

    func release() { lock.release() }
}
