import ArgumentParser
import Foundation
import LinliClient
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore

struct DeviceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Provision, list, rotate and revoke devices.",
        subcommands: [Request.self, Enroll.self, RotateKey.self, Revoke.self, Assign.self, List.self])

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
        @Option(help: "The person the device is issued to, e.g. 李明: shown by `device list`, and `device revoke` finds the device by it.")
        var user: String?
        @Flag(help: "Overwrite the --out file if it exists.") var force = false

        func run() throws {
            try guarded {
                guard let role = Role(rawValue: role), role != .authority else {
                    throw LinliError(.invalidInput, "unknown role \(role): use inspector, kiosk, staff or server")
                }
                guard let data = FileManager.default.contents(atPath: request) else {
                    throw LinliError(.notFound, "cannot read the request \(request)")
                }
                let parsed = try EnrolmentRequest.decode(data)
                let (device, key) = try parsed.verified()
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
                if FileManager.default.fileExists(atPath: out), !force {
                    throw LinliError(.invalidInput, "\(out) already exists; refusing to overwrite it", hint: "give another --out, or add --force")
                }
                let (store, identity, settings) = try options.open()
                // The same request twice is one enrolment; the same device
                // with another key or role is a rotation or a mistake.
                let earlier = try store.certificates().filter { $0.device == device }.max { $0.validFromSeq < $1.validFromSeq }
                var again = false
                if let earlier {
                    guard earlier.publicKey == key else {
                        throw LinliError(.invalidInput, "device \(device.hex) is already enrolled with another key",
                                         hint: "to give it a new key, make a rotation request on the device (`linli key rotate`) and use `linli-admin device rotate`")
                    }
                    guard earlier.role == role, earlier.grids == Set(grids) else {
                        let was = earlier.grids.isEmpty ? "" : " for " + earlier.grids.sorted().joined(separator: ", ")
                        throw LinliError(.invalidInput, "device \(device.hex) is already enrolled as \(earlier.role.rawValue)\(was); a second certificate would contradict the first",
                                         hint: "write its bundle again with the same --role and --grid, or revoke it and enrol a new device")
                    }
                    again = true
                } else {
                    try store.issueCertificate(as: identity, device: device, publicKey: key, role: role, grids: Set(grids), label: parsed.label)
                }
                if let user { try options.setUser(user, of: device) }
                let records = try store.changeSets(scopes: [.system]).map(\.envelope)
                let bundle = EnrolmentBundle(authorityPublicKey: PublicKey(hex: settings.rootPublicKey)!, device: device, role: role,
                                             grids: grids.sorted(), server: server ?? settings.server, trustRecords: records)
                try AtomicFile.write(bundle.encoded(), to: out)
                emit(options.json, ["device": device.hex, "role": role.rawValue, "grids": grids.sorted(), "bundle": out, "already_enrolled": again],
                     text: "device \(device.hex) \(again ? "was already enrolled" : "enrolled") as \(role.rawValue)\(grids.isEmpty ? "" : " for " + grids.sorted().joined(separator: ", ")); bundle written to \(out)")
            }
        }
    }

    struct RotateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate",
            abstract: "Certify a device's new key from a sequence number on (its chain goes on unbroken).")
        @OptionGroup var options: AuthorityOptions
        @Argument(help: "The rotation request, signed with the device's current key (a file, or the line its QR code carries).") var request: String
        @Option(help: "The first of the device's change sets the new key signs (default: the one the request names; required for a request without one).")
        var fromSeq: UInt64?
        @Option(help: "Ask this server for the device's last change set, and refuse a --from-seq that is not after it.") var server: String?
        @Option(help: "PEM file of the certificate authority of the server's TLS certificate (default: the system's).") var caFile: String?

        func run() async throws {
            try await guardedAsync {
                guard let data = FileManager.default.contents(atPath: request) else { throw LinliError(.notFound, "cannot read \(request)") }
                let parsed = try EnrolmentRequest.decode(data)
                let (device, key) = try parsed.verified()
                guard let previousHex = parsed.previousPublicKey else {
                    throw LinliError(.invalidInput, "this is an enrolment request, not a key rotation request")
                }
                // The device signs with the new key from the seq it named: a
                // certificate from any other seq would refuse its records.
                if let named = parsed.fromSeq, let fromSeq, fromSeq != named {
                    throw LinliError(.invalidInput, "the device signs with its new key from change set \(named), as its request says; --from-seq \(fromSeq) would refuse its records",
                                     hint: "leave out --from-seq")
                }
                guard let fromSeq = fromSeq ?? parsed.fromSeq else {
                    throw LinliError(.invalidInput, "this request names no first change set for the new key: give --from-seq, after the last change set the device has signed",
                                     hint: "or make the request on the device with `linli key rotate`, which names it")
                }
                let (store, identity, _, client) = try options.open(server: server, caFile: caFile)
                if let client {
                    let last = try await client.serverHeads()[device] ?? 0
                    guard fromSeq > last else {
                        throw LinliError(.invalidInput, "the server already holds change set \(last) of device \(device.hex), signed with its current key; the new key must start after it, not at \(fromSeq)",
                                         hint: "use --from-seq \(last + 1) or later, or let the device make the request (`linli key rotate`)")
                    }
                }
                let current = try store.certificates().filter { $0.device == device }.max { $0.validFromSeq < $1.validFromSeq }
                guard let current, current.publicKey.hex == previousHex else {
                    throw LinliError(.badSignature, "the request is not signed with the key currently certified for device \(device.hex)")
                }
                guard fromSeq > current.validFromSeq else {
                    throw LinliError(.invalidInput, "the new key must start after sequence number \(current.validFromSeq)")
                }
                try store.issueCertificate(as: identity, device: device, publicKey: key, role: current.role, grids: current.grids, validFromSeq: fromSeq,
                                           label: parsed.label.isEmpty ? current.label : parsed.label)
                emit(options.json, ["device": device.hex, "public_key": key.hex, "valid_from_seq": fromSeq],
                     text: "device \(device.hex): new key certified from change set \(fromSeq)")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a device from a point of its log on: later change sets are refused and kept for review.")
        @OptionGroup var options: AuthorityOptions
        @Argument(help: "The device: its id, a unique start of it (at least 4 hex digits), its label (李明的终端) or its user (李明).") var device: String
        @Option(help: "The last of its change sets that stays valid.") var afterSeq: UInt64?
        @Flag(help: "Revoke its whole history.") var all = false
        @Option(help: "Why, for the record.") var reason: String

        func validate() throws {
            guard (afterSeq != nil) != all else { throw ValidationError("give exactly one of --after-seq N and --all") }
        }

        func run() throws {
            try guarded {
                let (store, identity, _) = try options.open()
                let deviceID = try DeviceCommand.resolve(device, among: try store.certificates(), users: try options.users())
                let last = all ? 0 : afterSeq!
                try store.revoke(as: identity, device: deviceID, lastValidSeq: last, reason: reason)
                emit(options.json, ["device": deviceID.hex, "last_valid_seq": last, "reason": reason],
                     text: all ? "device \(deviceID.hex) revoked entirely" : "device \(deviceID.hex) revoked after its change set \(last)")
            }
        }
    }

    struct Assign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record who a device is issued to now, e.g. when a phone is handed to another inspector.")
        @OptionGroup var options: AuthorityOptions
        @Argument(help: "The device: its id, a unique start of it, its label or its current user.") var device: String
        @Option(help: "The person it is issued to, e.g. 李明.") var user: String

        func run() throws {
            try guarded {
                let settings = try options.settings()
                let store = try options.replica(settings)
                let deviceID = try DeviceCommand.resolve(device, among: try store.certificates(), users: try options.users())
                try options.setUser(user, of: deviceID)
                emit(options.json, ["device": deviceID.hex, "user": user], text: "device \(deviceID.hex) is issued to \(user)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List enrolled devices: label, user, role, grids, key, revocation, and with --server the last change set the server holds of each.")
        @OptionGroup var options: AuthorityOptions
        @Option(help: "Ask this server for each device's last change set (needs the passphrase).") var server: String?
        @Option(help: "PEM file of the certificate authority of the server's TLS certificate (default: the system's).") var caFile: String?

        func run() async throws {
            try await guardedAsync {
                let settings = try options.settings()
                let store = try options.replica(settings)
                // One line per device: its newest certificate.
                var newest: [DeviceID: IssuedCertificate] = [:]
                var order: [DeviceID] = []
                for certificate in try store.certificates() {
                    if newest[certificate.device] == nil { order.append(certificate.device) }
                    if certificate.validFromSeq >= newest[certificate.device]?.validFromSeq ?? 0 { newest[certificate.device] = certificate }
                }
                let revocations = try store.revocations()
                let users = try options.users()
                var lastSeen: [DeviceID: UInt64] = [:]
                if server != nil, let client = try options.open(server: server, caFile: caFile).client {
                    lastSeen = try await client.serverHeads()
                }
                let rows: [[String: Any]] = order.compactMap { newest[$0] }.map { certificate in
                    var row: [String: Any] = ["device": certificate.device.hex, "label": certificate.label, "user": users[certificate.device.hex] ?? "",
                                              "role": certificate.role.rawValue,
                                              "grids": certificate.grids.sorted(), "public_key": certificate.publicKey.hex,
                                              "valid_from_seq": certificate.validFromSeq]
                    if let last = revocations[certificate.device] { row["revoked_after_seq"] = last }
                    if server != nil { row["last_seq"] = lastSeen[certificate.device] ?? 0 }
                    return row
                }
                emit(options.json, ["devices": rows], text: order.compactMap { newest[$0] }.map { certificate in
                    let revoked = revocations[certificate.device].map { "  REVOKED after \($0)" } ?? ""
                    let seen = server == nil ? "" : "  last change set \(lastSeen[certificate.device] ?? 0)"
                    let label = certificate.label.isEmpty ? "(no label)" : certificate.label
                    let user = users[certificate.device.hex] ?? "(no user)"
                    let grids = certificate.grids.isEmpty ? "-" : certificate.grids.sorted().joined(separator: ",")
                    return "\(certificate.device.hex)  \(label)  \(user)  \(certificate.role.rawValue)  \(grids)  key from \(certificate.validFromSeq)\(seen)\(revoked)"
                }.joined(separator: "\n"))
            }
        }
    }

    /// The enrolled device `text` names: its id, a unique start of its id
    /// (at least 4 hex digits), its label, or the user it was issued to. An
    /// administrator looking for "李明's lost phone" has a name, not 32 hex digits.
    static func resolve(_ text: String, among certificates: [IssuedCertificate], users: [String: String] = [:]) throws -> DeviceID {
        let devices = Set(certificates.map(\.device))
        if let id = DeviceID(hex: text) {
            guard devices.contains(id) else { throw LinliError(.notFound, "device \(text) was never enrolled by this authority") }
            return id
        }
        let lower = text.lowercased()
        if lower.count >= 4, lower.allSatisfy(\.isHexDigit) {
            let matches = devices.filter { $0.hex.hasPrefix(lower) }
            if matches.count == 1 { return matches.first! }
            if matches.count > 1 {
                throw LinliError(.invalidInput, "\(matches.count) devices start with \(text): \(matches.map(\.hex).sorted().joined(separator: ", "))",
                                 hint: "give more digits of the id")
            }
        }
        let labelled = Set(certificates.filter { $0.label == text }.map(\.device))
        if labelled.count == 1 { return labelled.first! }
        if labelled.count > 1 {
            throw LinliError(.invalidInput, "\(labelled.count) devices are labelled \(text): \(labelled.map(\.hex).sorted().joined(separator: ", "))",
                             hint: "give the device id instead (linli-admin device list)")
        }
        let issued = devices.filter { users[$0.hex] == text }
        if issued.count == 1 { return issued.first! }
        if issued.count > 1 {
            throw LinliError(.invalidInput, "\(issued.count) devices were issued to \(text): \(issued.map(\.hex).sorted().joined(separator: ", "))",
                             hint: "give the label or the device id instead (linli-admin device list)")
        }
        throw LinliError(.notFound, "no enrolled device has the id, id start, label or user \(text)", hint: "see linli-admin device list")
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
