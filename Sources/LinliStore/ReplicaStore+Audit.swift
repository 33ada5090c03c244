import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol

/// One resolution of the review queue as the audit trail shows it: who,
/// when, what it replaced and why, and whether it holds up.
public struct AuditEntry: Sendable, Equatable {
    public let position: Int64
    public let time: UInt64
    public let user: String
    public let device: DeviceID
    public let seq: UInt64
    public let item: String
    public let kind: String
    public let decision: String
    public let subject: String
    public let value: String
    public let replaced: String
    public let note: String
    /// Empty when the resolution verifies; otherwise what is wrong.
    public let problems: [String]

    public var verified: Bool { problems.isEmpty }
}

extension ReplicaStore {
    /// Verifies every resolution this replica holds, from the raw bytes of
    /// its change set: the signature against the key the trust records give
    /// the device at that sequence number; the key's role (staff); the link
    /// to the device's previous change set; and that the audit row tells the
    /// truth: the write it explains is in the same change set, with the value
    /// it names, replacing exactly the values it lists.
    public func auditResolutions() throws -> [AuditEntry] {
        try run {
            try writer.read { db in
                var resolutions: [Data: Row] = [:]
                for row in try Row.fetchAll(db, sql: """
                    SELECT id, kind, item, decision, subject_table, subject_row, subject_field, value, replaced, note
                    FROM \(StoreSchema.quoted(ReviewSchema.resolution))
                    """) { resolutions[row["id"]] = row }
                guard !resolutions.isEmpty else { return [] }
                // One pass over the log: the table's name appears as it is
                // in every envelope that writes it, a cheap filter before
                // decoding. The change set that made an audit row is the one
                // that writes its `kind`.
                var entries: [AuditEntry] = []
                for stored in try Row.fetchAll(db, sql: "SELECT position, envelope FROM linli_log WHERE instr(envelope, ?) > 0 ORDER BY position",
                                               arguments: [Data(ReviewSchema.resolution.utf8)]) {
                    guard let signed = try? SignedChangeSet(envelope: stored["envelope"]) else { continue }
                    for change in signed.changeSet.rows where change.table == ReviewSchema.resolution && change.writes.contains(where: { $0.field == "kind" }) {
                        guard let resolution = resolutions[change.row.data] else { continue }
                        entries.append(try audit(db, signed: signed, position: stored["position"], resolution: resolution))
                    }
                }
                return entries
            }
        }
    }

    private func audit(_ db: Database, signed: SignedChangeSet, position: Int64, resolution: Row) throws -> AuditEntry {
        let header = signed.header
        var problems: [String] = []
        let trust = try Self.loadTrust(db, devices: [header.device])[header.device]
        if let entry = trust?.keys.filter({ $0.from <= header.seq }).max(by: { $0.from < $1.from }) {
            if entry.key.keyID != header.keyID { problems.append("names key \(Hex.encode(header.keyID)), not the certified \(Hex.encode(entry.key.keyID))") }
            if !signed.verify(with: entry.key) { problems.append("the signature does not match the bytes") }
            if entry.role != .staff { problems.append("signed by a \(entry.role.rawValue), not staff") }
        } else {
            problems.append("no certificate for device \(header.device.hex) at change set \(header.seq)")
        }
        if let last = trust?.lastValidSeq, header.seq > last { problems.append("signed after the device was revoked (last valid \(last))") }
        if header.seq > 1, let deviceN = try Int64.fetchOne(db, sql: "SELECT n FROM linli_device WHERE device = ?", arguments: [header.device.data]),
           let previous = try Data.fetchOne(db, sql: "SELECT hash FROM linli_log WHERE device_n = ? AND seq = ?", arguments: [deviceN, Int64(header.seq - 1)]),
           previous != header.prev {
            problems.append("does not link to the device's change set \(header.seq - 1)")
        }

        let decision: String = resolution["decision"] ?? ""
        let table: String? = resolution["subject_table"]
        let row: String? = resolution["subject_row"]
        let field: String? = resolution["subject_field"]
        let replacedText: String = resolution["replaced"] ?? ""
        if ["chosen", "corrected", "newest_wins"].contains(decision), let table, let row, let field {
            let written = signed.changeSet.rows.first { $0.table == table && $0.row.hex == row }?.writes.first { $0.field == field }
            if let written {
                if let named: String = resolution["value"], named != written.value.description {
                    problems.append("says it wrote \(named) but wrote \(written.value)")
                }
                let listed = ((try? JSONSerialization.jsonObject(with: Data(replacedText.utf8))) as? [[String: String]] ?? [])
                    .map { "\($0["device"] ?? "")@\($0["seq"] ?? "")" }
                let actual = written.replaces.map { "\($0.device.hex)@\($0.seq)" }
                if Set(listed) != Set(actual) { problems.append("lists replaced values \(listed.sorted()) but replaced \(actual.sorted())") }
            } else {
                problems.append("explains a write to \(table).\(field) of \(row.prefix(8)) that its change set does not hold")
            }
        }
        return AuditEntry(
            position: position, time: header.hlc.milliseconds, user: header.user, device: header.device, seq: header.seq,
            item: resolution["item"] ?? "", kind: resolution["kind"] ?? "", decision: decision,
            subject: [table, row.map { String($0.prefix(8)) }, field].compactMap { $0 }.joined(separator: " "),
            value: resolution["value"] ?? "", replaced: replacedText, note: resolution["note"] ?? "", problems: problems)
    }
}
