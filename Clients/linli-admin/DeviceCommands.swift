import ArgumentParser
import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore

struct DeviceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Provision, list, rotate and revoke devices.",
        subcommands: [Request.self, Enroll.self, RotateKey.self, Revoke.self, List.self])

    struct Request: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "On a device: make its key pair (sealed with a PIN) and an enrolment request for the administrator.",
            discussion: "With --previous-key, makes a key rotation request signed with the device's current key.")
        @Option(help: "Where to write the request.") var out: String
        @Option(help: "Where to write the sealed private key.") var key: String
        @Option(help: "A name for the device, e.g. 李明的终端.") var label = ""
        @Option(help: "A file whose first line is the device PIN.") var pinFile: String?
        @Option(help: "For a rotation: the device's current sealed key.") var previousKey: String?
        @Option(help: "For a rotation: the device id.") var device: String?
        @Flag(help: "Print the request as one line of text for a QR code.") var text = false

        func run() throws {
            try guarded {
                let pin = try Passphrase.read(file: pinFile, prompt: "device PIN: ")
                var previous: SigningKey?
                var deviceID = DeviceID.random()
                if let previousKey {
                    previous = try SealedKeyFile.open(previousKey, passphrase: pin)
                    guard let given = device.flatMap(DeviceID.init(hex:)) else {
                        throw LinliError(.invalidInput, "a rotation request needs --device with the enrolled device id")
                    }
                    deviceID = given
                }
                if FileManager.default.fileExists(atPath: key) {
                    throw LinliError(.invalidInput, "\(key) already exists; refusing to overwrite a key")
                }
                let signingKey = SigningKey.generate()
                let request = EnrolmentRequest.make(device: deviceID, key: signingKey, label: label, previous: previous)
                try SealedKeyFile.write(try SealedKey.seal(signingKey, passphrase: pin, label: label, strength: .interactive), to: key)
                do { try AtomicFile.write(request.encoded(), to: out) } catch {
                    try? FileManager.default.removeItem(atPath: key)
                    throw error
                }
                print(text ? request.text : "request for device \(deviceID.hex) written to \(out)")
            }
        }
    }

    struct Enroll: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enroll",
            abstract: "Certify a device from its request and write the enrolment bundle it imports.")
        @OptionGroup var options: AuthorityOptions
        @Argument(help: "The enrolment request file.") var request: String
        @Option(help: "inspector, kiosk, staff or server.") var role: String
        @Option(name: .customLong("grid"), help: "A grid an inspector covers or a kiosk serves (repeat for several).") var grids: [String] = []
        @Option(help: "Where to write the enrolment bundle.") var out: String
        @Option(help: "The server address in the bundle (default: the authority's).") var server: String?

        func run() throws {
            try guarded {
                guard let role = Role(rawValue: role), role != .authority else {
                    throw LinliError(.invalidInput, "unknown role \(role): use inspector, kiosk, staff or server")
                }
                guard let data = FileManager.default.contents(atPath: request) else {
                    throw LinliError(.notFound, "cannot read the request \(request)")
                }
                let (device, key) = try EnrolmentRequest.decode(data).verified()
                let registered = Set(try options.grids().map(\.id))
                for grid in grids where !registered.contains(grid) {
                    throw LinliError(.invalidInput, "unknown grid \(grid); registered grids: \(registered.sorted().joined(separator: ", "))",
                                     hint: "register it with `linli-admin grid add \(grid)`")
                }
                if role == .inspector, grids.isEmpty {
                    throw LinliError(.invalidInput, "an inspector must cover at least one grid: add --grid")
                }
                if role != .inspector, role != .kiosk, !grids.isEmpty {
                    throw LinliError(.invalidInput, "only inspectors (the grids they cover) and kiosks (the grids they serve) are enrolled for grids; a \(role.rawValue) is not")
                }
                let (store, identity, settings) = try options.open()
                try store.issueCertificate(as: identity, device: device, publicKey: key, role: role, grids: Set(grids), label: "")
                let records = try store.changeSets(scopes: [.system]).map(\.envelope)
                let bundle = EnrolmentBundle(authorityPublicKey: PublicKey(hex: settings.rootPublicKey)!, device: device, role: role,
                                             grids: grids.sorted(), server: server ?? settings.server, trustRecords: records)
                try AtomicFile.write(bundle.encoded(), to: out)
                emit(options.json, ["device": device.hex, "role": role.rawValue, "grids": grids.sorted(), "bundle": out],
                     text: "device \(device.hex) enrolled as \(role.rawValue)\(grids.isEmpty ? "" : " for " + grids.sorted().joined(separator: ", ")); bundle written to \(out)")
            }
        }
    }

    struct RotateKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Certify a device's new key from a sequence number on (its chain goes on unbroken).")
        @OptionGroup var options: AuthorityOptions
        @Argument(help: "The rotation request, signed with the device's current key.") var request: String
        @Option(help: "The first of the device's change sets the new key signs.") var fromSeq: UInt64

        func run() throws {
            try guarded {
                guard let data = FileManager.default.contents(atPath: request) else { throw LinliError(.notFound, "cannot read \(request)") }
                let parsed = try EnrolmentRequest.decode(data)
                let (device, key) = try parsed.verified()
                guard let previousHex = parsed.previousPublicKey else {
                    throw LinliError(.invalidInput, "this is an enrolment request, not a key rotation request")
                }
                let (store, identity, _) = try options.open()
                let current = try store.certificates().filter { $0.device == device }.max { $0.validFromSeq < $1.validFromSeq }
                guard let current, current.publicKey.hex == previousHex else {
                    throw LinliError(.badSignature, "the request is not signed with the key currently certified for device \(device.hex)")
                }
                guard fromSeq > current.validFromSeq else {
                    throw LinliError(.invalidInput, "the new key must start after sequence number \(current.validFromSeq)")
                }
                try store.issueCertificate(as: identity, device: device, publicKey: key, role: current.role, grids: current.grids, validFromSeq: fromSeq)
                emit(options.json, ["device": device.hex, "public_key": key.hex, "valid_from_seq": fromSeq],
                     text: "device \(device.hex): new key certified from change set \(fromSeq)")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a device from a point of its log on: later change sets are refused and kept for review.")
        @OptionGroup var options: AuthorityOptions
        @Argument(help: "The device id (32 hex digits).") var device: String
        @Option(help: "The last of its change sets that stays valid.") var afterSeq: UInt64?
        @Flag(help: "Revoke its whole history.") var all = false
        @Option(help: "Why, for the record.") var reason: String

        func validate() throws {
            guard (afterSeq != nil) != all else { throw ValidationError("give exactly one of --after-seq N and --all") }
        }

        func run() throws {
            try guarded {
                guard let deviceID = DeviceID(hex: device) else {
                    throw LinliError(.invalidInput, "\(device) is not a device id (32 hex digits)")
                }
                let (store, identity, _) = try options.open()
                guard try store.certificates().contains(where: { $0.device == deviceID }) else {
                    throw LinliError(.notFound, "device \(device) was never enrolled by this authority")
                }
                let last = all ? 0 : afterSeq!
                try store.revoke(as: identity, device: deviceID, lastValidSeq: last, reason: reason)
                emit(options.json, ["device": deviceID.hex, "last_valid_seq": last, "reason": reason],
                     text: all ? "device \(deviceID.hex) revoked entirely" : "device \(deviceID.hex) revoked after its change set \(last)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List enrolled devices with role, grids, key and revocation.")
        @OptionGroup var options: AuthorityOptions

        func run() throws {
            try guarded {
                let settings = try options.settings()
                let store = try ReplicaStore(path: options.replicaPath, schema: AuthoritySettings.schema, authority: PublicKey(hex: settings.rootPublicKey))
                let certificates = try store.certificates()
                let revocations = try store.revocations()
                let rows: [[String: Any]] = certificates.map { certificate in
                    var row: [String: Any] = ["device": certificate.device.hex, "role": certificate.role.rawValue,
                                              "grids": certificate.grids.sorted(), "public_key": certificate.publicKey.hex,
                                              "valid_from_seq": certificate.validFromSeq]
                    if let last = revocations[certificate.device] { row["revoked_after_seq"] = last }
                    return row
                }
                emit(options.json, ["devices": rows], text: certificates.map { certificate in
                    let revoked = revocations[certificate.device].map { " REVOKED after \($0)" } ?? ""
                    return "\(certificate.device.hex)  \(certificate.role.rawValue)  \(certificate.grids.sorted().joined(separator: ","))  from \(certificate.validFromSeq)\(revoked)"
                }.joined(separator: "\n"))
            }
        }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify a whole store: signatures, chains, certificates, revocations, forks. Exits 1 on any inconsistency.")
    @Option(help: "The replica file to audit (a server's or a device's).") var data: String
    @Option(help: "The authority root public key (hex); default: read from --dir.") var authority: String?
    @Option(name: .customLong("dir"), help: "An authority folder to take the root key from.") var directory = "authority"
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        try guarded {
            guard FileManager.default.fileExists(atPath: data) else { throw LinliError(.notFound, "there is no store at \(data)") }
            let rootHex: String
            if let authority { rootHex = authority } else {
                rootHex = try AuthorityOptions.parse(["--dir", directory]).settings().rootPublicKey
            }
            guard let root = PublicKey(hex: rootHex) else { throw LinliError(.invalidInput, "\(rootHex) is not a public key (64 hex digits)") }
            let store = try ReplicaStore(path: data, schema: Schema(name: "audit", version: 0, tables: []), authority: root)
            let report = try store.audit()
            // Resolutions of the conflict desk: who, when, what they replaced
            // and why, each verified like any change set and against its writes.
            let resolutions = try store.auditResolutions()
            let failing = resolutions.filter { !$0.verified }
            let formatter = ISO8601DateFormatter()
            emit(json, ["devices": report.devices, "change_sets": report.changeSets, "refused": report.refused, "forks": report.forks,
                        "problems": report.problems + failing.flatMap { entry in entry.problems.map { "resolution \(entry.item) by \(entry.user): \($0)" } },
                        "clean": report.isClean && failing.isEmpty,
                        "resolutions": resolutions.map { entry -> [String: Any] in
                            ["position": entry.position, "time": formatter.string(from: Date(timeIntervalSince1970: Double(entry.time) / 1000)),
                             "user": entry.user, "device": entry.device.hex, "seq": entry.seq, "item": entry.item, "kind": entry.kind,
                             "decision": entry.decision, "subject": entry.subject, "value": entry.value, "replaced": entry.replaced,
                             "note": entry.note, "verified": entry.verified, "problems": entry.problems]
                        }],
                 text: (["devices \(report.devices), change sets \(report.changeSets), refused \(report.refused), forks \(report.forks)"]
                        + report.problems.map { "PROBLEM: \($0)" }
                        + ["resolutions \(resolutions.count)"]
                        + resolutions.map { entry in
                            "  \(formatter.string(from: Date(timeIntervalSince1970: Double(entry.time) / 1000))) \(entry.user) (\(entry.device.hex.prefix(8))@\(entry.seq)) "
                                + "\(entry.item) \(entry.decision) \(entry.subject)\(entry.value.isEmpty ? "" : " = \(entry.value)") · \(entry.note)"
                                + (entry.verified ? "  verified" : "  PROBLEM: " + entry.problems.joined(separator: "; "))
                        }
                        + [report.isClean && failing.isEmpty ? "the store is authentic and consistent" : "\(report.problems.count + failing.count) problems"])
                    .joined(separator: "\n"))
            if !report.isClean || !failing.isEmpty { throw ExitCode(1) }
        }
    }
}
