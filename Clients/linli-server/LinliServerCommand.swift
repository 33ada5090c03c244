import ArgumentParser
import Foundation
import Hummingbird
import LinliCore
import LinliCrypto
import LinliServer
import LinliStore
import Logging
import Metrics
import Prometheus

/// `linli-server serve`: the sync server on embedded SQLite; `backup` and
/// `restore` of its store.
@main
struct LinliServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linli-server", abstract: "The Linli sync server.", subcommands: [Serve.self, Backup.self, Restore.self])
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve push and pull over HTTP.",
        discussion: """
            Settings come from the flags, else the environment (LINLI_DATA, LINLI_LISTEN, LINLI_AUTHORITY, \
            LINLI_SCHEMA, LINLI_DEVICE, LINLI_KEY, LINLI_KEY_PASSPHRASE_FILE, LINLI_DESK_ACCOUNTS, LINLI_DESK_SECURE_COOKIES, \
            LINLI_DESK_TRUST_PROXY), else the configuration file (--config, JSON with the keys data, listen, authority, schema, \
            device, key, key_passphrase_file, desk_accounts, desk_secure_cookies, desk_trust_proxy).

            With a device id and a sealed key enrolled with the role server, the server signs bootstrap snapshots \
            (GET /v1/snapshot); without them it offers none, and new devices replay from zero.

            With a desk accounts file (linli-admin desk add), it serves the staff's conflict desk at /desk: staff \
            log in with their password and resolve the review queue in a browser. The file is read at every login. \
            Behind TLS (nginx), add --desk-secure-cookies so the session cookie is sent over HTTPS only, and \
            --desk-trust-proxy so failed logins are counted per client address (the last X-Forwarded-For address, \
            which the shipped nginx configuration sets) and not as if all came from nginx; only when the server \
            listens where nothing but the proxy reaches it.

            SIGTERM or SIGINT stops it gracefully: it stops accepting connections, finishes the requests in flight \
            (a push in a commit is answered), and exits.
            """)

    @Option(help: "A JSON configuration file.") var config: String?
    @Option(help: "Folder for the server's store.") var data: String?
    @Option(help: "Address to listen on, HOST:PORT.") var listen: String?
    @Option(help: "The authority root public key (64 hex digits).") var authority: String?
    @Option(help: "A schema pack (JSON) the server validates change sets against.") var schema: String?
    @Option(help: "The server's device id (32 hex digits), enrolled with the role server.") var device: String?
    @Option(help: "The server's sealed key file (linli-admin device request --key).") var key: String?
    @Option(help: "A file whose first line unseals the server's key.") var keyPassphraseFile: String?
    @Option(help: "The desk accounts file (linli-admin desk add): serves the staff's conflict desk at /desk.") var deskAccounts: String?
    @Flag(help: "Mark the desk's cookies Secure: for when TLS ends in front of the server.") var deskSecureCookies = false
    @Flag(help: "Take the desk's client addresses from the proxy's X-Forwarded-For: for when only the proxy reaches the server.")
    var deskTrustProxy = false
    @Option(help: "Close a connection idle for this many seconds (1 to connectionIdleSecondsMax, \(Limits.connectionIdleSecondsMax), the default).")
    var connectionIdleSeconds: Int?
    @Option(help: "Refuse a request body not arrived within this many seconds (1 to requestBodyReadSecondsMax, \(Limits.requestBodyReadSecondsMax), the default).")
    var bodyReadSeconds: Int?

    /// A number of seconds from the option, the environment or the file, from 1 to `max`.
    static func seconds(_ option: Int?, _ text: String?, name: String, max: Int) throws -> Int {
        guard let value = option ?? text.map({ Int($0) ?? 0 }) else { return max }
        guard (1...max).contains(value) else {
            throw ValidationError("\(name) takes whole seconds from 1 to \(max), not \(option.map(String.init) ?? text ?? "")")
        }
        return value
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var file: [String: String] = [:]
        if let config {
            guard let contents = FileManager.default.contents(atPath: config),
                  let object = try? JSONSerialization.jsonObject(with: contents) as? [String: String] else {
                throw ValidationError("cannot read the configuration \(config): it must be a JSON object of strings")
            }
            file = object
        }
        let data = self.data ?? environment["LINLI_DATA"] ?? file["data"] ?? "server-data"
        let listen = self.listen ?? environment["LINLI_LISTEN"] ?? file["listen"] ?? "127.0.0.1:8080"
        let idleSeconds = try Self.seconds(connectionIdleSeconds, environment["LINLI_CONNECTION_IDLE_SECONDS"] ?? file["connection_idle_seconds"],
                                           name: "connection_idle_seconds", max: Limits.connectionIdleSecondsMax)
        let bodySeconds = try Self.seconds(bodyReadSeconds, environment["LINLI_BODY_READ_SECONDS"] ?? file["body_read_seconds"],
                                           name: "body_read_seconds", max: Limits.requestBodyReadSecondsMax)
        guard let rootHex = authority ?? environment["LINLI_AUTHORITY"] ?? file["authority"], let root = PublicKey(hex: rootHex) else {
            throw ValidationError("give the authority root public key with --authority or LINLI_AUTHORITY (linli-admin authority show prints it)")
        }
        let parts = listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--listen takes HOST:PORT, e.g. 127.0.0.1:8080") }
        var domain = Schema(name: "empty", version: 0, tables: [])
        if let path = schema ?? environment["LINLI_SCHEMA"] ?? file["schema"] {
            guard let contents = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the schema \(path)") }
            domain = try JSONDecoder().decode(Schema.self, from: contents)
        }
        guard let keyPath = key ?? environment["LINLI_KEY"] ?? file["key"] else {
            throw ValidationError("""
                linli-server signs every answer with its own key, and none is configured. Enrol the server once:
                  linli-admin device request --out server.req --key server.key --pin-file server.pin --label 同步服务器
                  linli-admin device enroll server.req --dir AUTHORITY --role server --out server.bundle
                then start it with --device (the id in server.req), --key server.key and --key-passphrase-file server.pin
                (or LINLI_DEVICE, LINLI_KEY and LINLI_KEY_PASSPHRASE_FILE).
                """)
        }
        guard let deviceHex = device ?? environment["LINLI_DEVICE"] ?? file["device"], let deviceID = DeviceID(hex: deviceHex) else {
            throw ValidationError("a server key needs the server's device id: --device, LINLI_DEVICE or \"device\" (32 hex digits)")
        }
        guard let passphrasePath = keyPassphraseFile ?? environment["LINLI_KEY_PASSPHRASE_FILE"] ?? file["key_passphrase_file"],
              let passphrase = (try? String(contentsOfFile: passphrasePath, encoding: .utf8))?.split(separator: "\n", omittingEmptySubsequences: false).first
        else {
            throw ValidationError("a server key needs --key-passphrase-file (or LINLI_KEY_PASSPHRASE_FILE): a file whose first line unseals it")
        }
        let identity = ServerIdentity(device: deviceID, key: try SealedKeyFile.open(keyPath, passphrase: String(passphrase)))
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let lock: FolderLock
        do { lock = try serverLock(data) } catch let error as LinliError { throw ValidationError("\(error.message); \(error.hint ?? "")") }
        defer { lock.release() }
        let store = try ReplicaStore(path: (data as NSString).appendingPathComponent("server.sqlite"), schema: domain, authority: root)
        var logger = Logger(label: "linli-server")
        logger.logLevel = .info
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(ServerMetrics.factory(registry))
        let deskAccounts = self.deskAccounts ?? environment["LINLI_DESK_ACCOUNTS"] ?? file["desk_accounts"]
        ServerMetrics.declare(desk: deskAccounts != nil)
        let service = SyncService(storage: MeasuredStorage(store), identity: identity, snapshotFolder: (data as NSString).appendingPathComponent("snapshots"))
        let router = SyncServer.router(service, logger: logger, metrics: registry, bodyReadSeconds: bodySeconds)
        if let accounts = deskAccounts {
            let secure = deskSecureCookies || ["1", "true", "yes"].contains((environment["LINLI_DESK_SECURE_COOKIES"] ?? file["desk_secure_cookies"] ?? "").lowercased())
            let trustProxy = deskTrustProxy || ["1", "true", "yes"].contains((environment["LINLI_DESK_TRUST_PROXY"] ?? file["desk_trust_proxy"] ?? "").lowercased())
            try DeskWeb(service: service, schema: store.schema, accountsPath: accounts, secureCookies: secure, trustProxy: trustProxy,
                        logger: logger).mount(on: router)
            logger.info("conflict desk at /desk", metadata: ["accounts": "\(accounts)", "secure_cookies": "\(secure)", "trust_proxy": "\(trustProxy)"])
        }
        // The responder notes each connection's peer address for the desk's login throttle.
        let app = Application(responder: PeerAddressResponder(router.buildResponder()),
                              server: .http1(configuration: .init(
                                  idleTimeout: .seconds(Int64(idleSeconds)),
                                  httpDecoderConfiguration: .init(maxHeaderFieldSize: Limits.requestHeaderFieldBytesMax,
                                                                  maxHeaderListSize: Limits.requestHeadersBytesMax,
                                                                  maxHeaderFieldCount: Limits.requestHeaderFieldsMax))),
                              configuration: .init(address: .hostname(String(parts[0]), port: port), serverName: "linli-server"),
                              logger: logger)
        logger.info("listening", metadata: ["address": "\(listen)", "data": "\(data)"])
        // runService stops gracefully on SIGTERM and SIGINT.
        try await app.runService()
        logger.info("stopped")
    }
}
