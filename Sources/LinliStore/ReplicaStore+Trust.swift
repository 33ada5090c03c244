import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol

/// Trust records: certificates, revocations and rotations of the authority
/// key. They are rows of the `sys_` tables, written only by the authority
/// in the system scope, and travel like any change set. Checked before they
/// are merged; carried out (keys registered, revoked change sets taken out)
/// right after, inside the same transaction.
extension ReplicaStore {
    /// Throws if a system change set carries a trust record that is not
    /// well formed. Trust records are never changed once written: a new
    /// certificate or revocation is a new row.
    func checkTrustRecords(_ signed: SignedChangeSet, key: KeyEntry, session: MergeSession) throws {
        let header = signed.header
        guard key.role == .authority, header.device == authorityDevice || authorityDevice == nil else {
            throw LinliError(.notPermitted, "only the authority issues certificates, revocations and rotations")
        }
        for row in signed.changeSet.rows {
            guard row.table.hasPrefix(TrustSchema.reservedPrefix) else {
                throw LinliError(.schemaViolation, "the system scope holds only trust records, not \(row.table)")
            }
            guard try session.survivors(table: row.table, row: row.row).isEmpty else {
                throw LinliError(.schemaViolation, "trust record \(row.table) \(row.row.hex) already exists; trust records are never changed, issue a new one")
            }
            let values = Dictionary(row.writes.map { ($0.field, $0.value) }, uniquingKeysWith: { $1 })
            switch row.table {
            case TrustSchema.certificate:
                let certificate = try Certificate(values)
                if certificate.role == .authority || certificate.device == header.device {
                    throw LinliError(.schemaViolation, "a certificate cannot make a device the authority or name the authority's own device")
                }
            case TrustSchema.revocation:
                let revocation = try Revocation(values)
                if revocation.device == header.device {
                    throw LinliError(.schemaViolation, "the authority cannot revoke itself; rotate its key instead")
                }
            case TrustSchema.authorityKey:
                let rotation = try AuthorityRotation(values)
                guard rotation.validFromSeq > header.seq else {
                    throw LinliError(.schemaViolation, "a new authority key must be valid from a later change set than the one announcing it")
                }
                // Signed by both: the change set by the old key (checked
                // already), the statement by the new one. One key named
                // twice counts once.
                guard rotation.publicKey != key.key else {
                    throw LinliError(.badSignature, "the rotation names the current authority key as the new one: it is signed by one key, not two")
                }
                let message = Authority.rotationMessage(authority: header.device, previous: key.key, next: rotation.publicKey,
                                                        validFromSeq: rotation.validFromSeq)
                guard rotation.publicKey.verify(signature: rotation.signature, message: message) else {
                    throw LinliError(.badSignature, "the rotation statement is not signed by the new authority key")
                }
            default:
                throw LinliError(.schemaViolation, "\(row.table) is not a trust record table")
            }
        }
    }

    /// Carries out the trust records of a merged system change set.
    func applyTrustRecords(_ signed: SignedChangeSet, session: MergeSession, policy: ApplyPolicy, now: UInt64) throws {
        let db = session.db
        for row in signed.changeSet.rows {
            let values = Dictionary(row.writes.map { ($0.field, $0.value) }, uniquingKeysWith: { $1 })
            switch row.table {
            case TrustSchema.certificate:
                let certificate = try Certificate(values)
                try Self.insertKey(db, device: certificate.device, key: certificate.publicKey, validFromSeq: certificate.validFromSeq,
                                   role: certificate.role, grids: certificate.grids)
                session.trustChanged.insert(certificate.device)
                // What this device already has in the log must still verify
                // (a new key from seq N, narrower grids); what waited for
                // this certificate may now be accepted.
                try reverifyLogged(certificate.device, fromSeq: certificate.validFromSeq, session: session, now: now)
                try retryUnknownKey(certificate.device, session: session, policy: policy, now: now)
            case TrustSchema.revocation:
                let revocation = try Revocation(values)
                try db.execute(sql: """
                    INSERT INTO linli_revocation (device, last_valid_seq, reason) VALUES (?, ?, ?)
                    ON CONFLICT(device) DO UPDATE SET last_valid_seq = min(last_valid_seq, excluded.last_valid_seq),
                        reason = CASE WHEN excluded.last_valid_seq < last_valid_seq THEN excluded.reason ELSE reason END
                    """, arguments: [revocation.device.data, Int64(revocation.lastValidSeq), revocation.reason])
                session.trustChanged.insert(revocation.device)
                if revocation.lastValidSeq < Limits.sequenceNumberMax {
                    try reverifyLogged(revocation.device, fromSeq: revocation.lastValidSeq + 1, session: session, now: now)
                }
                try quarantineHeld(revocation, session: session, now: now)
            case TrustSchema.authorityKey:
                let rotation = try AuthorityRotation(values)
                try Self.insertKey(db, device: signed.header.device, key: rotation.publicKey, validFromSeq: rotation.validFromSeq,
                                   role: .authority, grids: [])
                session.trustChanged.insert(signed.header.device)
                try retryUnknownKey(signed.header.device, session: session, policy: policy, now: now)
            default:
                break
            }
        }
    }

    /// Re-checks a device's logged change sets from `fromSeq` on against
    /// what the replica now trusts (keys, revocation, role and grids). A
    /// replica that learns of a revocation or a new certificate after it
    /// merged the device's later change sets takes out those that no longer
    /// verify: they move from the log to quarantine with the reason (bytes
    /// kept), and the field state and views are derived again from the log
    /// before the rest of the batch merges. Every replica thus ends with the
    /// same log, whatever order trust records and data reached it in.
    private func reverifyLogged(_ device: DeviceID, fromSeq: UInt64, session: MergeSession, now: UInt64) throws {
        let db = session.db
        let deviceN = try session.deviceNumber(device)
        let logged = try Row.fetchAll(
            db, sql: "SELECT position, seq, hash, envelope FROM linli_log WHERE device_n = ? AND seq >= ? ORDER BY seq",
            arguments: [deviceN, Int64(fromSeq)])
        guard !logged.isEmpty else { return }
        let trust = try Self.loadTrust(db, devices: [device])[device] ?? DeviceTrust()
        var failing: LinliError?
        for row in logged {
            let signed = try SignedChangeSet(envelope: row["envelope"])
            if failing == nil {
                switch Self.verify(signed, trust: trust) {
                case .valid(let key):
                    do { try key.role.authorize(scope: signed.header.scope, device: device, grids: key.grids) } catch { failing = error }
                case .unknownKey:
                    failing = LinliError(.unknownKey, "no key of device \(device.hex) is certified for change set \(signed.header.seq) any more")
                case .invalid(let error):
                    failing = error
                }
            }
            // Once one fails, the chain after it cannot stand either.
            guard let error = failing else { continue }
            try quarantine(db, hash: row["hash"], device: device, seq: UInt64(row["seq"] as Int64), error: error, envelope: row["envelope"], now: now)
            try db.execute(sql: "DELETE FROM linli_log WHERE position = ?", arguments: [row["position"] as Int64])
        }
        if failing != nil {
            try session.resetHead(deviceN)
            session.needsRebuild = true
        }
    }

    /// Held change sets of a revoked device beyond its last valid one go
    /// to quarantine.
    private func quarantineHeld(_ revocation: Revocation, session: MergeSession, now: UInt64) throws {
        let db = session.db
        let error = LinliError(.revoked, "device \(revocation.device.hex) was revoked after its change set \(revocation.lastValidSeq) (\(revocation.reason))")
        let held = try Row.fetchAll(
            db, sql: "SELECT seq, hash, envelope FROM linli_held WHERE device = ? AND seq > ?",
            arguments: [revocation.device.data, Int64(revocation.lastValidSeq)])
        for row in held {
            try quarantine(db, hash: row["hash"], device: revocation.device, seq: UInt64(row["seq"] as Int64), error: error,
                           envelope: row["envelope"], now: now)
        }
        try db.execute(sql: "DELETE FROM linli_held WHERE device = ? AND seq > ?", arguments: [revocation.device.data, Int64(revocation.lastValidSeq)])
        // Those refused early for their role stay in quarantine as they are.
        try db.execute(sql: "DELETE FROM linli_refused_early WHERE device = ? AND seq > ?", arguments: [revocation.device.data, Int64(revocation.lastValidSeq)])
    }

    /// Change sets refused because their key was unknown are offered again
    /// once a certificate for their device arrives.
    private func retryUnknownKey(_ device: DeviceID, session: MergeSession, policy: ApplyPolicy, now: UInt64) throws {
        let db = session.db
        let waiting = try Row.fetchAll(
            db, sql: "SELECT id, envelope FROM linli_quarantine WHERE device = ? AND code = ? AND length(envelope) > 0 ORDER BY seq",
            arguments: [device.data, LinliError.Code.unknownKey.rawValue])
        for row in waiting {
            try db.execute(sql: "DELETE FROM linli_quarantine WHERE id = ?", arguments: [row["id"] as Int64])
            let signed = try SignedChangeSet(envelope: row["envelope"])
            _ = try offerAgain(signed, session: session, policy: policy, now: now)
        }
    }
}

/// A device certificate as written in `sys_certificate`.
struct Certificate {
    let device: DeviceID
    let publicKey: PublicKey
    let role: Role
    let grids: Set<String>
    let validFromSeq: UInt64

    init(_ values: [String: Value]) throws(LinliError) {
        guard case .bytes(let deviceBytes)? = values["device"], let device = DeviceID(bytes: deviceBytes) else {
            throw LinliError(.schemaViolation, "a certificate must name a 16-byte device id")
        }
        guard case .bytes(let keyBytes)? = values["public_key"], let key = PublicKey(bytes: keyBytes) else {
            throw LinliError(.schemaViolation, "a certificate must carry a 32-byte Ed25519 public key")
        }
        guard let roleText = values["role"]?.text, let role = Role(rawValue: roleText) else {
            throw LinliError(.schemaViolation, "a certificate must name a role: \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let from = values["valid_from_seq"]?.integer, from >= 1 else {
            throw LinliError(.schemaViolation, "a certificate's first valid sequence number must be at least 1")
        }
        let grids = (values["grids"]?.text ?? "").split(separator: ",").map(String.init)
        guard grids.allSatisfy(Scope.isValidGridName) else {
            throw LinliError(.schemaViolation, "a certificate names a grid that is not a valid grid name")
        }
        if role == .inspector, grids.isEmpty {
            throw LinliError(.schemaViolation, "an inspector's certificate must name at least one grid")
        }
        self.device = device
        self.publicKey = key
        self.role = role
        self.grids = Set(grids)
        self.validFromSeq = UInt64(from)
    }
}

/// A revocation as written in `sys_revocation`.
struct Revocation {
    let device: DeviceID
    /// The last change set that stays valid; 0 revokes the whole history.
    let lastValidSeq: UInt64
    let reason: String

    init(_ values: [String: Value]) throws(LinliError) {
        guard case .bytes(let deviceBytes)? = values["device"], let device = DeviceID(bytes: deviceBytes) else {
            throw LinliError(.schemaViolation, "a revocation must name a 16-byte device id")
        }
        guard let last = values["last_valid_seq"]?.integer, last >= 0 else {
            throw LinliError(.schemaViolation, "a revocation must name the last valid sequence number (0 for all)")
        }
        self.device = device
        self.lastValidSeq = UInt64(last)
        self.reason = values["reason"]?.text ?? ""
    }
}

/// A rotation of the authority key as written in `sys_authority_key`.
struct AuthorityRotation {
    let publicKey: PublicKey
    let validFromSeq: UInt64
    let signature: Data

    init(_ values: [String: Value]) throws(LinliError) {
        guard case .bytes(let keyBytes)? = values["public_key"], let key = PublicKey(bytes: keyBytes) else {
            throw LinliError(.schemaViolation, "an authority rotation must carry the new 32-byte public key")
        }
        guard let from = values["valid_from_seq"]?.integer, from >= 1 else {
            throw LinliError(.schemaViolation, "an authority rotation must name the sequence number the new key signs from")
        }
        guard case .bytes(let signature)? = values["new_key_signature"], signature.count == 64 else {
            throw LinliError(.schemaViolation, "an authority rotation must carry the new key's 64-byte signature")
        }
        self.publicKey = key
        self.validFromSeq = UInt64(from)
        self.signature = signature
    }
}

// MARK: Issuing trust records

extension ReplicaStore {
    /// Certifies `publicKey` for `device` from `validFromSeq` on, in `role`
    /// and `grids`. Run on the authority's own replica, as the authority.
    @discardableResult
    public func issueCertificate(
        as authority: DeviceIdentity, device: DeviceID, publicKey: PublicKey, role: Role, grids: Set<String>,
        validFromSeq: UInt64 = 1, label: String = ""
    ) throws -> [SignedChangeSet] {
        try write(as: authority) { tx in
            try tx.create(TrustSchema.certificate, [
                "device": .bytes(device.data), "public_key": .bytes(publicKey.bytes), "role": .text(role.rawValue),
                "grids": .text(grids.sorted().joined(separator: ",")), "valid_from_seq": .integer(Int64(validFromSeq)),
                "label": .text(label),
            ])
        }
    }

    /// Revokes `device` after its change set `lastValidSeq` (0: its whole
    /// history).
    @discardableResult
    public func revoke(as authority: DeviceIdentity, device: DeviceID, lastValidSeq: UInt64, reason: String) throws -> [SignedChangeSet] {
        try write(as: authority) { tx in
            try tx.create(TrustSchema.revocation, [
                "device": .bytes(device.data), "last_valid_seq": .integer(Int64(lastValidSeq)), "reason": .text(reason),
            ])
        }
    }

    /// Rotates the authority key: the next authority change set announces
    /// `next`, signed by the current key (the change set) and by `next`
    /// (the statement). Returns the change set and the identity to use from
    /// now on.
    public func rotateAuthority(as current: DeviceIdentity, to next: SigningKey) throws -> (changeSets: [SignedChangeSet], identity: DeviceIdentity) {
        let announcing = (try heads()[current.device]?.seq ?? 0) + 1
        let validFrom = announcing + 1
        let message = Authority.rotationMessage(authority: current.device, previous: current.key.publicKey, next: next.publicKey,
                                                validFromSeq: validFrom)
        let made = try write(as: current) { tx in
            try tx.create(TrustSchema.authorityKey, [
                "public_key": .bytes(next.publicKey.bytes), "valid_from_seq": .integer(Int64(validFrom)),
                "new_key_signature": .bytes(next.sign(message)),
            ])
        }
        return (made, DeviceIdentity(device: current.device, key: next, user: current.user))
    }
}

// MARK: Audit

/// What `audit()` found.
public struct AuditReport: Sendable, Codable, Equatable {
    public var devices = 0
    public var changeSets = 0
    public var refused = 0
    public var forks = 0
    public var problems: [String] = []
    public var isClean: Bool { problems.isEmpty }
}

extension ReplicaStore {
    /// Verifies the whole store: every stored change set against its hash
    /// and the key valid for its device at its sequence number, every chain
    /// link, every key against a certificate from the authority, every
    /// revocation, and reports forks. Read-only.
    public func audit() throws -> AuditReport {
        try run {
            try writer.read { db in
                var report = AuditReport()
                var devices = Set<DeviceID>()
                var previous: (device: DeviceID, seq: UInt64, hash: Data)?
                var certified: Set<String> = []
                // Change sets refused in their chain hold their places
                // (CHANGESET.md 6): a chain may pass over them.
                var chainedRefusals: [DeviceID: [UInt64: Data]] = [:]
                for row in try Row.fetchAll(db, sql: """
                    SELECT d.device, c.seq, c.hash FROM linli_chained_refusal c JOIN linli_device d ON d.n = c.device_n
                    """) {
                    if let device = DeviceID(bytes: row[0] as Data) { chainedRefusals[device, default: [:]][UInt64(row[1] as Int64)] = row[2] }
                }
                /// The refused change sets from `from` through `through`, when
                /// every one of them is refused in its chain: the hash of the last.
                func refusedRun(_ device: DeviceID, from: UInt64, through: UInt64) -> Data? {
                    guard from <= through, let refused = chainedRefusals[device] else { return nil }
                    var seq = from
                    while seq < through { guard refused[seq] != nil else { return nil }; seq += 1 }
                    return refused[through]
                }
                let cursor = try Row.fetchCursor(db, sql: """
                    SELECT d.device, l.seq, l.hash, l.envelope FROM linli_log l JOIN linli_device d ON d.n = l.device_n
                    ORDER BY d.device, l.seq
                    """)
                while let row = try cursor.next() {
                    report.changeSets += 1
                    guard let device = DeviceID(bytes: row[0] as Data) else { continue }
                    devices.insert(device)
                    let seq = UInt64(row[1] as Int64)
                    let name = "change set \(seq) of device \(device.hex)"
                    let signed: SignedChangeSet
                    do { signed = try SignedChangeSet(envelope: row[3] as Data) } catch {
                        report.problems.append("\(name): the stored bytes no longer decode (\(error)); the store was altered")
                        previous = nil
                        continue
                    }
                    if signed.hash != row[2] as Data {
                        report.problems.append("\(name): the stored bytes do not match the hash recorded when it was accepted; the store was altered")
                    }
                    let trust = try Self.loadTrust(db, devices: [device])[device] ?? DeviceTrust()
                    if case .invalid(let error) = Self.verify(signed, trust: trust) {
                        report.problems.append("\(name): \(error.message)")
                    } else if case .unknownKey = Self.verify(signed, trust: trust) {
                        report.problems.append("\(name): no key of the device is known at that sequence number")
                    }
                    if let previous, previous.device == device {
                        if seq == previous.seq + 1 {
                            if signed.header.prev != previous.hash { report.problems.append("\(name): does not link to change set \(previous.seq)") }
                        } else if let refused = refusedRun(device, from: previous.seq + 1, through: seq - 1) {
                            if signed.header.prev != refused { report.problems.append("\(name): does not link to change set \(seq - 1), refused in its chain") }
                        } else {
                            report.problems.append("\(name): the chain skips from \(previous.seq) to \(seq)")
                        }
                    } else if seq == 1 {
                        if !signed.header.prev.isEmpty { report.problems.append("\(name): the device's chain does not start at 1") }
                    } else if let refused = refusedRun(device, from: 1, through: seq - 1) {
                        if signed.header.prev != refused { report.problems.append("\(name): does not link to change set \(seq - 1), refused in its chain") }
                    } else {
                        report.problems.append("\(name): the device's chain does not start at 1")
                    }
                    if signed.header.scope == .system {
                        if device != authorityDevice {
                            report.problems.append("\(name): a trust record not made by the authority")
                        } else {
                            for rowChange in signed.changeSet.rows {
                                let values = Dictionary(rowChange.writes.map { ($0.field, $0.value) }, uniquingKeysWith: { $1 })
                                if rowChange.table == TrustSchema.certificate, let certificate = try? Certificate(values) {
                                    certified.insert(certificate.device.hex + "/" + certificate.publicKey.hex + "/\(certificate.validFromSeq)")
                                } else if rowChange.table == TrustSchema.authorityKey, let rotation = try? AuthorityRotation(values) {
                                    certified.insert(device.hex + "/" + rotation.publicKey.hex + "/\(rotation.validFromSeq)")
                                }
                            }
                        }
                    }
                    previous = (device, seq, signed.hash)
                }
                if let authorityDevice, let root = authorityRoot {
                    certified.insert(authorityDevice.hex + "/" + root.hex + "/1")
                    for row in try Row.fetchAll(db, sql: "SELECT device, public_key, valid_from_seq, role FROM linli_device_key") {
                        let entry = Hex.encode(row["device"] as Data) + "/" + Hex.encode(row["public_key"] as Data) + "/\(row["valid_from_seq"] as Int64)"
                        if !certified.contains(entry) {
                            report.problems.append("the key of device \(Hex.encode(row["device"] as Data)) is trusted without a certificate from the authority (forged or inserted by hand)")
                        }
                    }
                }
                for row in try Row.fetchAll(db, sql: "SELECT device, seq, message FROM linli_forked_device") {
                    report.forks += 1
                    report.problems.append("fork: \(row["message"] as String)")
                }
                report.devices = devices.count
                report.refused = try Int.fetchOne(db, sql: "SELECT count(*) FROM linli_quarantine") ?? 0
                return report
            }
        }
    }
}

// MARK: Reading trust records

/// A device certificate, as the authority issued it.
public struct IssuedCertificate: Sendable, Equatable {
    public let device: DeviceID
    public let publicKey: PublicKey
    public let role: Role
    public let grids: Set<String>
    public let validFromSeq: UInt64
    /// The name the device was enrolled under, e.g. 李明的终端 ("" when none).
    public let label: String
}

extension ReplicaStore {
    /// Every certificate this replica holds, oldest first.
    public func certificates() throws -> [IssuedCertificate] {
        try trustRows(TrustSchema.certificate).compactMap { values in
            (try? Certificate(values)).map {
                IssuedCertificate(device: $0.device, publicKey: $0.publicKey, role: $0.role, grids: $0.grids, validFromSeq: $0.validFromSeq,
                                  label: values["label"]?.text ?? "")
            }
        }
    }

    /// The last valid sequence number of each revoked device.
    public func revocations() throws -> [DeviceID: UInt64] {
        var result: [DeviceID: UInt64] = [:]
        for values in try trustRows(TrustSchema.revocation) {
            if let revocation = try? Revocation(values) { result[revocation.device] = min(result[revocation.device] ?? .max, revocation.lastValidSeq) }
        }
        return result
    }

    private func trustRows(_ table: String) throws -> [[String: Value]] {
        var rows: [[String: Value]] = []
        for (_, envelope) in try changeSets(scopes: [.system], limit: Int.max) {
            let signed = try SignedChangeSet(envelope: envelope)
            for row in signed.changeSet.rows where row.table == table {
                rows.append(Dictionary(row.writes.map { ($0.field, $0.value) }, uniquingKeysWith: { $1 }))
            }
        }
        return rows
    }
}

// MARK: Who is asking

/// What a device may do, from the certificates and revocations a replica
/// holds: its current key, role and grids.
public struct DeviceAccess: Sendable, Equatable {
    public let device: DeviceID
    public let key: PublicKey
    public let role: Role
    public let grids: Set<String>
    /// For an inspector: the kiosks whose certificates name one of its
    /// grids, whose submissions it verifies at the door.
    public let kiosks: Set<DeviceID>

    public init(device: DeviceID, key: PublicKey, role: Role, grids: Set<String>, kiosks: Set<DeviceID> = []) {
        self.device = device
        self.key = key
        self.role = role
        self.grids = grids
        self.kiosks = kiosks
    }

    /// The scopes whose change sets the device receives: its grids (all of
    /// them for staff, the server and the authority), the submissions of
    /// the kiosks serving its grids, its own kiosk scope, public records
    /// and trust records. `nil` means every scope.
    public var readableScopes: Set<Scope>? {
        switch role {
        case .staff, .server, .authority: return nil
        case .inspector: return Set(grids.map { Scope.grid($0) } + kiosks.map { Scope.kiosk($0) }).union([.public, .system])
        case .kiosk: return [.kiosk(device), .public, .system]
        }
    }
}

extension ReplicaStore {
    /// The device's current key, role and grids. Throws `unknown_device`
    /// for a device without a certificate and `revoked` for a revoked one.
    public func access(_ device: DeviceID) throws -> DeviceAccess {
        try run {
            try writer.read { db in
                guard let trust = try Self.loadTrust(db, devices: [device])[device],
                      let current = trust.keys.max(by: { $0.from < $1.from }) else {
                    throw LinliError(.unknownDevice, "device \(device.hex) is not enrolled with this server",
                                     hint: "enrol the device with linli-admin and sync the trust records to the server")
                }
                if let last = trust.lastValidSeq {
                    throw LinliError(.revoked, "device \(device.hex) was revoked after its change set \(last)")
                }
                var kiosks: Set<DeviceID> = []
                if current.role == .inspector {
                    // A kiosk serves the grids its certificate names; the
                    // inspectors of those grids verify its submissions.
                    for row in try Row.fetchAll(db, sql: "SELECT DISTINCT device, grids FROM linli_device_key WHERE role = 'kiosk'") {
                        let served = (row["grids"] as String).split(separator: ",").map(String.init)
                        if let kiosk = DeviceID(bytes: row["device"] as Data), !current.grids.isDisjoint(with: served) { kiosks.insert(kiosk) }
                    }
                }
                return DeviceAccess(device: device, key: current.key, role: current.role, grids: current.grids, kiosks: kiosks)
            }
        }
    }
}
