import Dispatch
import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol

extension ReplicaStore {
    /// Offers change sets to the replica, in order, and says what became of
    /// each.
    ///
    /// Work goes in batches of ``Limits/changeSetsPerBatchMax``. Decoding
    /// and signature checks of a batch run in parallel, and overlap the
    /// merge of the batch before it; then one write transaction per batch
    /// checks each change set's chain position, schema and scope and merges
    /// it inside a savepoint. A refusal never aborts the batch: the refused
    /// bytes go to `linli_quarantine` with the reason, and the others are
    /// merged. Only a storage failure throws, and then nothing of that batch
    /// is kept (earlier batches are).
    ///
    /// Offering the same bytes again is a no-op (`duplicate`).
    public func apply(_ envelopes: [Data], policy: ApplyPolicy = .replica) throws -> [ApplyOutcome] {
        try apply(envelopes.map { OfferedChangeSet(envelope: $0) }, policy: policy)
    }

    /// Offers already decoded change sets (their envelopes are what count);
    /// they are not decoded a second time.
    public func apply(_ changeSets: [SignedChangeSet], policy: ApplyPolicy = .replica) throws -> [ApplyOutcome] {
        try apply(changeSets.map(OfferedChangeSet.init(signed:)), policy: policy)
    }

    /// Offers change sets some of which the caller has decoded already (a
    /// server that looked at headers before applying): each is decoded
    /// once, here or there.
    public func apply(_ offered: [OfferedChangeSet], policy: ApplyPolicy = .replica) throws -> [ApplyOutcome] {
        var batches: [[OfferedChangeSet]] = []
        var start = 0
        while start < offered.count {
            let end = min(start + Limits.changeSetsPerBatchMax, offered.count)
            batches.append(Array(offered[start..<end]))
            start = end
        }
        var outcomes: [ApplyOutcome] = []
        outcomes.reserveCapacity(offered.count)
        guard batches.count > 1 else {
            for batch in batches { outcomes += try commitBatch(try prepareBatch(batch), policy: policy) }
            return outcomes
        }
        // Pipeline: prepare batch k+1 on another thread while batch k merges.
        let first = batches[0]
        var pending = Pending { try self.prepareBatch(first) }
        for index in batches.indices {
            let prepared = try pending.wait()
            if index + 1 < batches.count {
                let next = batches[index + 1]
                pending = Pending { try self.prepareBatch(next) }
            }
            outcomes += try commitBatch(prepared, policy: policy)
        }
        return outcomes
    }

    enum Verification: Sendable {
        /// The signature is good; the key and what its certificate grants.
        case valid(KeyEntry)
        /// No key known (or not checked yet): check in the transaction.
        case unknownKey
        case invalid(LinliError)
    }

    /// A batch decoded and with its signatures checked, ready to merge.
    struct PreparedBatch: Sendable {
        let envelopes: [Data]
        let decoded: [Result<SignedChangeSet, LinliError>]
        let verifications: [Verification]
        let predecessors: [UInt64?]
        let senders: [DeviceID?]
    }

    private func prepareBatch(_ offered: [OfferedChangeSet]) throws -> PreparedBatch {
        // 1. Decode what is not decoded yet, in parallel.
        let envelopes = offered.map(\.envelope)
        let decoded = ParallelMap.run(offered) { item -> Result<SignedChangeSet, LinliError> in
            item.decoded ?? OfferedChangeSet.decode(item.envelope)
        }
        // 2. Keys of the devices named, then signatures, in parallel.
        let devices = decoded.compactMap { try? $0.get().header.device }
        let trust = try run { try writer.read { db in try Self.loadTrust(db, devices: devices) } }
        let verifications = ParallelMap.run(decoded) { (item: Result<SignedChangeSet, LinliError>) -> Verification in
            guard case .success(let signed) = item else { return .unknownKey }
            return Self.verify(signed, trust: trust[signed.header.device] ?? DeviceTrust())
        }
        return PreparedBatch(envelopes: envelopes, decoded: decoded, verifications: verifications, predecessors: offered.map(\.scopedPredecessor),
                             senders: offered.map(\.sender))
    }

    /// Applies one page of a pull and records `cursor` as the position it
    /// ends at, in the same transaction: after a crash or a cut-off sync
    /// either both are there or neither, so a pull resumes from the cursor
    /// with no gap and no duplicate. A page may hold at most
    /// ``Limits/changeSetsPerBatchMax`` change sets.
    public func applyPage(_ envelopes: [Data], cursor: SyncCursor, policy: ApplyPolicy = .replica) throws -> [ApplyOutcome] {
        try applyPage(envelopes.map { OfferedChangeSet(envelope: $0) }, cursor: cursor, policy: policy)
    }

    /// A page whose entries may carry their scoped predecessor.
    public func applyPage(_ offered: [OfferedChangeSet], cursor: SyncCursor, policy: ApplyPolicy = .replica) throws -> [ApplyOutcome] {
        guard offered.count <= Limits.changeSetsPerBatchMax else {
            throw LinliError(.overLimit, "a page holds \(offered.count) change sets; changeSetsPerBatchMax is \(Limits.changeSetsPerBatchMax)")
        }
        return try commitBatch(try prepareBatch(offered), policy: policy, cursor: { _ in cursor })
    }

    /// A pulled page whose entries sit at `positions` of the server's log
    /// (PROTOCOL.md 2.2, the cursor rule): the cursor moves to `cursor`
    /// only past entries that were applied, held, or refused for what
    /// their valid signature says. An entry that arrived damaged (it does
    /// not decode, or its signature fails) is kept in quarantine, and the
    /// cursor stops just before it, so it is fetched again. Returns the
    /// outcomes and the cursor stored.
    public func applyPulledPage(_ offered: [OfferedChangeSet], positions: [Int64], cursor: SyncCursor,
                                policy: ApplyPolicy = .replica) throws -> (outcomes: [ApplyOutcome], cursor: SyncCursor) {
        guard offered.count <= Limits.changeSetsPerBatchMax else {
            throw LinliError(.overLimit, "a page holds \(offered.count) change sets; changeSetsPerBatchMax is \(Limits.changeSetsPerBatchMax)")
        }
        guard positions.count == offered.count else {
            throw LinliError(.invalidInput, "a page of \(offered.count) change sets came with \(positions.count) positions")
        }
        var stored = cursor
        let outcomes = try commitBatch(try prepareBatch(offered), policy: policy) { outcomes in
            if let damaged = outcomes.firstIndex(where: { $0.arrivedDamaged }) {
                stored = SyncCursor(name: cursor.name, position: min(cursor.position, positions[damaged] - 1))
            }
            return stored
        }
        return (outcomes, stored)
    }

    private func commitBatch(_ prepared: PreparedBatch, policy: ApplyPolicy,
                             cursor cursorFor: ([ApplyOutcome]) -> SyncCursor? = { _ in nil }) throws -> [ApplyOutcome] {
        let (envelopes, decoded, verifications) = (prepared.envelopes, prepared.decoded, prepared.verifications)
        // 3. Chain, schema, scope and merge, in one transaction.
        let now = clock()
        return try run {
            try writer.write { db in
                var session = try MergeSession(db, schema: schema, now: now)
                try session.preload(decoded.flatMap { item -> [(table: String, row: RowID)] in
                    guard case .success(let signed) = item else { return [] }
                    return signed.changeSet.rows.map { ($0.table, $0.row) }
                })
                var outcomes: [ApplyOutcome] = []
                outcomes.reserveCapacity(envelopes.count)
                for (offset, item) in decoded.enumerated() {
                    switch item {
                    case .failure(let error):
                        // Kept under the device that sent it, when known, so
                        // its bytes count against that device's bound.
                        let hash = Blake2b256.hash(envelopes[offset])
                        let sender = prepared.senders[offset]
                        let recorded = try quarantine(db, hash: hash, device: sender, seq: nil, error: error, envelope: envelopes[offset], now: now,
                                                      decodable: false)
                        outcomes.append(ApplyOutcome(hash: hash, device: nil, seq: nil, status: .refused(recorded)))
                    case .success(let signed):
                        let status = try offer(signed, verification: verifications[offset], session: session, policy: policy, now: now,
                                               scopedPredecessor: prepared.predecessors[offset])
                        outcomes.append(ApplyOutcome(hash: signed.hash, device: signed.header.device, seq: signed.header.seq, status: status))
                        if session.needsRebuild {
                            // Trust changed what is valid: derive the state
                            // again now, so the rest of the batch merges onto it.
                            try session.finish()
                            try rebuildDerived(db, now: now)
                            let trustChanged = session.trustChanged
                            session = try MergeSession(db, schema: schema, now: now)
                            session.trustChanged = trustChanged
                        }
                    }
                }
                try session.finish()
                if session.needsRebuild { try rebuildDerived(db, now: now) }
                if let cursor = cursorFor(outcomes) { try Self.store(cursor, db) }
                return outcomes
            }
        }
    }

    /// Offers a change set again inside a running session (a quarantined
    /// one whose key has just been certified).
    func offerAgain(_ signed: SignedChangeSet, session: MergeSession, policy: ApplyPolicy, now: UInt64) throws -> ApplyOutcome.Status {
        try offer(signed, verification: .unknownKey, session: session, policy: policy, now: now)
    }

    /// Decides and carries out what happens to one verified-or-not change set.
    private func offer(
        _ signed: SignedChangeSet, verification: Verification, session: MergeSession, policy: ApplyPolicy, now: UInt64,
        scopedPredecessor: UInt64? = nil
    ) throws -> ApplyOutcome.Status {
        let db = session.db
        let header = signed.header
        func refuse(_ error: LinliError) throws -> ApplyOutcome.Status {
            .refused(try quarantine(db, hash: signed.hash, device: header.device, seq: header.seq, error: error, envelope: signed.envelope, now: now))
        }
        // Signature first: nothing unsigned may touch chains or fork marks.
        var verification = verification
        if case .unknownKey = verification {
            // The key may have been certified earlier in this batch.
            verification = try verifyNow(signed, db: db)
        } else if session.trustChanged.contains(header.device) {
            // A certificate or revocation of this device arrived earlier in
            // this batch, after the parallel check.
            verification = try verifyNow(signed, db: db)
        }
        let key: KeyEntry
        switch verification {
        case .valid(let entry): key = entry
        case .unknownKey:
            return try refuse(LinliError(
                .unknownKey, "no key of device \(header.device.hex) is known for change set \(header.seq)",
                hint: "sync the device certificates first, or enrol the device"))
        case .invalid(let error):
            return try refuse(error)
        }
        if session.isForked(header.device) {
            return try refuse(LinliError(
                .deviceQuarantined, "device \(header.device.hex) is quarantined because its history forked; its change sets wait for an administrator",
                hint: "an administrator must review the fork (linli-admin audit) before this device's changes are accepted"))
        }

        // Chain position.
        let deviceN = try session.deviceNumber(header.device)
        let head = try session.head(deviceN)
        if header.seq <= head.seq {
            if try session.loggedHash(deviceN, seq: header.seq) == signed.hash { return .duplicate }
            if let earlier = try session.chainedRefusal(deviceN, seq: header.seq, hash: signed.hash) {
                // Refused before for what it says; refused again, the same way.
                return .refused(earlier)
            }
            let message = "device \(header.device.hex) signed two different change sets at sequence \(header.seq): its history forked (a cloned or tampered device)"
            try session.markForked(header.device, seq: header.seq, message: message)
            return try refuse(LinliError(.fork, message, hint: "the device is quarantined until an administrator decides"))
        }
        // A replica follows the device across change sets the server does
        // not send it (outside its scopes, or refused), when it holds every
        // one the server does send (PROTOCOL.md 2.2.1).
        let skipsUnsent = header.seq > head.seq + 1 && scopedPredecessor.map { head.seq >= $0 } == true
        if header.seq > head.seq + 1, !skipsUnsent {
            // What its key may not write is refused now, not held: a device
            // must not fill the server with change sets behind a gap that
            // would be refused anyway. It is kept in quarantine and noted in
            // linli_refused_early; once the gap fills it takes its place in
            // the chain as refused (releaseHeld), so the device's later
            // change sets are not stalled behind it.
            do { try Self.authorizeRole(key, signed) } catch {
                let status = try refuse(error)
                try db.execute(sql: "INSERT OR IGNORE INTO linli_refused_early (device, seq, hash) VALUES (?, ?, ?)",
                               arguments: [header.device.data, Int64(header.seq), signed.hash])
                session.noteHeld(header.device)
                return status
            }
            let held = try Row.fetchOne(db, sql: "SELECT count(*), total(length(envelope)) FROM linli_held WHERE device = ?",
                                        arguments: [header.device.data])
            let heldCount: Int = held?[0] ?? 0
            let heldBytes: Double = held?[1] ?? 0
            guard heldCount < Limits.heldChangeSetsPerDeviceMax else {
                return try refuse(LinliError(
                    .overLimit, "device \(header.device.hex) already has \(heldCount) change sets waiting for \(head.seq + 1); heldChangeSetsPerDeviceMax is \(Limits.heldChangeSetsPerDeviceMax)",
                    hint: "sync the missing change sets of this device first"))
            }
            guard heldBytes + Double(signed.envelope.count) <= Double(Limits.heldBytesPerDeviceMax) else {
                return try refuse(LinliError(
                    .overLimit, "device \(header.device.hex) already has \(Int(heldBytes)) bytes of change sets waiting for \(head.seq + 1); heldBytesPerDeviceMax is \(Limits.heldBytesPerDeviceMax)",
                    hint: "sync the missing change sets of this device first; the device keeps this one and sends it again"))
            }
            try db.execute(
                sql: "INSERT OR IGNORE INTO linli_held (device, seq, hash, received_at, envelope) VALUES (?, ?, ?, ?, ?)",
                arguments: [header.device.data, Int64(header.seq), signed.hash, Int64(now), signed.envelope])
            session.noteHeld(header.device)
            return .held(missingFrom: head.seq + 1)
        }
        guard skipsUnsent || header.prev == head.hash else {
            let message = "change set \(header.seq) of device \(header.device.hex) does not link to the change set \(head.seq) this replica has: the chain is broken"
            try session.markForked(header.device, seq: header.seq, message: message)
            return try refuse(LinliError(.brokenChain, message, hint: "the device is quarantined until an administrator decides"))
        }

        // What it says. A refusal from here on keeps the change set's place
        // in its device's chain: it is kept in quarantine, its writes are
        // not merged, and the device's next change set, which links to it,
        // is taken as usual. One refused change never stalls a device.
        func refuseInChain(_ error: LinliError) throws -> ApplyOutcome.Status {
            let status = try refuse(error)
            try session.chainRefused(deviceN, seq: header.seq, hash: signed.hash)
            try releaseHeld(after: signed, session: session, policy: policy, now: now)
            return status
        }
        do { try Self.authorizeRole(key, signed) } catch { return try refuseInChain(error) }
        if policy.refuseFutureClocks {
            do { try HybridLogicalClock.checkDrift(header.hlc, now: now) } catch { return try refuseInChain(error) }
        }
        do { try checkSchema(signed.changeSet) } catch { return try refuseInChain(error) }
        if policy.checksTableRules {
            do {
                try checkRequired(signed.changeSet, session: session)
                try checkTableRules(signed.changeSet, session: session)
                try checkResolutions(signed.changeSet, session: session)
            } catch let error as LinliError where error.code != .storage {
                return try refuseInChain(error)
            }
        }
        if header.scope == .system {
            do { try checkTrustRecords(signed, key: key, session: session) } catch let error as LinliError where error.code != .storage {
                return try refuseInChain(error)
            }
        }
        do {
            try session.merge(signed, receivedAt: now)
        } catch let error as LinliError where error.code != .storage {
            return try refuseInChain(error)
        }
        if header.scope == .system { try applyTrustRecords(signed, session: session, policy: policy, now: now) }
        try releaseHeld(after: signed, session: session, policy: policy, now: now)
        return .applied
    }

    /// Step 7 of TRUST.md 7: the key's role may write the change set's
    /// scope and every table it writes.
    static func authorizeRole(_ key: KeyEntry, _ signed: SignedChangeSet) throws(LinliError) {
        try key.role.authorize(scope: signed.header.scope, device: signed.header.device, grids: key.grids)
        for row in signed.changeSet.rows { try key.role.authorize(table: row.table) }
    }

    /// Merges change sets that were waiting for the one just merged.
    private func releaseHeld(after signed: SignedChangeSet, session: MergeSession, policy: ApplyPolicy, now: UInt64) throws {
        guard session.devicesWithHeld.contains(signed.header.device) else { return }
        let db = session.db
        var next = signed.header.seq + 1
        // Sequence numbers are stored as Int64: none follows the largest.
        while next <= Limits.sequenceNumberMax {
            let rows = try Row.fetchAll(
                db, sql: "SELECT hash, envelope FROM linli_held WHERE device = ? AND seq = ?",
                arguments: [signed.header.device.data, Int64(next)])
            if rows.isEmpty {
                // One refused early for its role, behind the gap just filled:
                // offered again, it is refused in its chain, which releases
                // what follows it.
                guard let early = try Data.fetchOne(db, sql: """
                    SELECT q.envelope FROM linli_refused_early e JOIN linli_quarantine q ON q.hash = e.hash
                    WHERE e.device = ? AND e.seq = ? ORDER BY q.id LIMIT 1
                    """, arguments: [signed.header.device.data, Int64(next)]) else { return }
                try db.execute(sql: "DELETE FROM linli_refused_early WHERE device = ? AND seq = ?", arguments: [signed.header.device.data, Int64(next)])
                _ = try offer(try SignedChangeSet(envelope: early), verification: .unknownKey, session: session, policy: policy, now: now)
                return
            }
            try db.execute(sql: "DELETE FROM linli_held WHERE device = ? AND seq = ?", arguments: [signed.header.device.data, Int64(next)])
            var advanced = false
            for row in rows {
                let envelope: Data = row["envelope"]
                let held = try SignedChangeSet(envelope: envelope)
                let status = try offer(held, verification: .unknownKey, session: session, policy: policy, now: now)
                if status == .applied { advanced = true }
            }
            guard advanced else { return }
            next += 1
        }
    }

    func verifyNow(_ signed: SignedChangeSet, db: Database) throws -> Verification {
        Self.verify(signed, trust: try Self.loadTrust(db, devices: [signed.header.device])[signed.header.device] ?? DeviceTrust())
    }

    /// Checks a change set's signature with the key its device's
    /// certificates make valid at its sequence number (the certificate with
    /// the greatest first sequence number not above it), after checking the
    /// device was not revoked before it.
    static func verify(_ signed: SignedChangeSet, trust: DeviceTrust) -> Verification {
        let header = signed.header
        if let last = trust.lastValidSeq, header.seq > last {
            return .invalid(LinliError(
                .revoked, "device \(header.device.hex) was revoked after its change set \(last); change set \(header.seq) is refused",
                hint: "the change set is kept for review; an administrator decides what becomes of it"))
        }
        guard let entry = trust.keys.filter({ $0.from <= header.seq }).max(by: { $0.from < $1.from }) else { return .unknownKey }
        guard entry.key.keyID == header.keyID else {
            // A key this replica has no certificate for yet may be
            // certified later: wait for it, like an unknown device.
            if !trust.keys.contains(where: { $0.key.keyID == header.keyID }) { return .unknownKey }
            return .invalid(LinliError(
                .badSignature,
                "change set \(header.seq) of device \(header.device.hex) names key \(Hex.encode(header.keyID)), but the key valid at that sequence is \(Hex.encode(entry.key.keyID))"))
        }
        guard signed.verify(with: entry.key) else {
            return .invalid(LinliError(
                .badSignature, "the signature of change set \(header.seq) of device \(header.device.hex) does not match its bytes: it was altered or forged"))
        }
        return .valid(entry)
    }

    /// Checks writes against the declared schema. Tables and fields this
    /// replica does not know are kept when the change set comes from a newer
    /// schema version, and refused otherwise.
    func checkSchema(_ changeSet: ChangeSet) throws(LinliError) {
        let header = changeSet.header
        let newer = header.schemaVersion > schema.version
        for row in changeSet.rows {
            guard let table = schema.table(row.table) else {
                if newer { continue }
                throw LinliError(.schemaViolation, "table \(row.table) is not declared in schema \(schema.name) version \(schema.version)")
            }
            try Self.checkScopeRule(table, header: header)
            for write in row.writes {
                if write.field == MergeRules.deletedField {
                    guard write.value.boolean != nil else {
                        throw LinliError(.schemaViolation, "\(row.table).\(MergeRules.deletedField) takes true or false, not \(write.value)")
                    }
                    continue
                }
                guard let field = table.field(write.field) else {
                    if newer, !write.field.hasPrefix(MergeRules.reservedPrefix) { continue }
                    throw LinliError(.schemaViolation, "field \(row.table).\(write.field) is not declared in schema \(schema.name) version \(schema.version)")
                }
                try field.check(write.value, table: table.name)
                if case .gridField(let gridField) = table.scope, gridField == write.field, case .grid(let grid) = header.scope,
                   !write.value.isNull, write.value.text != grid {
                    throw LinliError(.outOfScope, "\(row.table).\(gridField) is \(write.value) but the change set is for grid \(grid)")
                }
            }
        }
    }

    /// Gatekeeper only: a change set that creates a row (writes its
    /// `_deleted` as false, and this replica holds nothing of the row yet)
    /// must give every field the schema declares `required` a value that is
    /// not null (CHANGESET.md 6.5). Replicas accept what the server
    /// accepted, so a replica's state never depends on when it learned a
    /// schema's `required` flags.
    func checkRequired(_ changeSet: ChangeSet, session: MergeSession) throws {
        var created: [String: [RowID: [String: Value]]] = [:]
        var order: [(table: TableSchema, row: RowID)] = []
        for row in changeSet.rows {
            guard let table = schema.table(row.table), table.fields.contains(where: \.required) else { continue }
            if created[table.name]?[row.row] == nil { order.append((table, row.row)) }
            for write in row.writes { created[table.name, default: [:]][row.row, default: [:]][write.field] = write.value }
        }
        for (table, row) in order {
            let written = created[table.name]?[row] ?? [:]
            guard written[MergeRules.deletedField]?.boolean == false, try session.survivors(table: table.name, row: row).isEmpty else { continue }
            let missing = table.fields.filter { $0.required && (written[$0.name] ?? .null).isNull }.map(\.name)
            guard missing.isEmpty else {
                throw LinliError(
                    .schemaViolation,
                    "the new \(table.name) \(row.hex) has no value for \(missing.joined(separator: ", ")), which schema \(schema.name) version \(schema.version) requires",
                    hint: "record it again with every required field filled in")
            }
        }
    }

    /// Gatekeeper only: checks the tables' cross-field rules (``TableRule``)
    /// for each row the change set writes, against the values the row would
    /// have: what it shows now, in this transaction, with the change set's
    /// writes laid over it. Only rules that compare a written field are
    /// checked, and a field in conflict that the change set does not write
    /// is not compared. Rows of tables without rules cost nothing; the
    /// others are read from the merge session's row cache.
    func checkTableRules(_ changeSet: ChangeSet, session: MergeSession) throws {
        var order: [(table: TableSchema, row: RowID)] = []
        var writes: [String: [RowID: [String: Value]]] = [:]
        for row in changeSet.rows {
            guard let table = schema.table(row.table), !table.rules.isEmpty else { continue }
            if writes[table.name]?[row.row] == nil { order.append((table, row.row)) }
            for write in row.writes { writes[table.name, default: [:]][row.row, default: [:]][write.field] = write.value }
        }
        for (table, row) in order {
            let written = writes[table.name]?[row] ?? [:]
            let values = try session.shownValues(table: table, row: row).merging(written) { $1 }
            try table.checkRules(values, touching: Set(written.keys), madeAt: changeSet.header.hlc.milliseconds)
        }
    }

    /// Gatekeeper only: a resolution must still find what it judged. When
    /// none of the values a resolution replaces survives any more, someone
    /// settled the item meanwhile (two staff on one item, or a bulk run
    /// twice): the later resolution is refused and kept, and its author
    /// sees why, instead of a new conflict between the two decisions.
    func checkResolutions(_ changeSet: ChangeSet, session: MergeSession) throws {
        let decisions: Set<String> = [ResolutionDecision.chosen.rawValue, ResolutionDecision.corrected.rawValue, ResolutionDecision.newestWins.rawValue]
        for audit in changeSet.rows where audit.table == ReviewSchema.resolution {
            var fields: [String: Value] = [:]
            for write in audit.writes { fields[write.field] = write.value }
            guard let decision = fields["decision"]?.text, decisions.contains(decision),
                  let table = fields["subject_table"]?.text, let rowText = fields["subject_row"]?.text, let row = RowID(hex: rowText),
                  let field = fields["subject_field"]?.text,
                  let settled = changeSet.rows.first(where: { $0.table == table && $0.row == row })?.writes.first(where: { $0.field == field }),
                  !settled.replaces.isEmpty else { continue }
            let fieldN = try session.nameNumber(field)
            let current = try MergeSession.survivors(of: fieldN, in: session.survivors(table: table, row: row))
            var alive = Set<Dot>()
            for stored in current { alive.insert(Dot(device: try session.deviceID(stored.deviceN), seq: stored.seq, index: stored.index)) }
            if !settled.replaces.contains(where: alive.contains) {
                throw LinliError(
                    .conflict,
                    "item \(fields["item"]?.text ?? "?") (\(table).\(field) of \(row.hex.prefix(8))) was settled meanwhile: none of the values this resolution replaces is current any more",
                    hint: "look at the queue again; the item is closed or has changed")
            }
        }
    }

    static func checkScopeRule(_ table: TableSchema, header: ChangeSetHeader) throws(LinliError) {
        let fits: Bool
        switch (table.scope, header.scope) {
        case (.gridField, .grid), (.public, .public), (.system, .system): fits = true
        case (.kiosk, .kiosk): fits = true
        case (.subject, .system): fits = false
        case (.subject, _): fits = true
        default: fits = false
        }
        guard fits else {
            throw LinliError(.outOfScope, "table \(table.name) cannot be written in scope \(header.scope)")
        }
    }

    /// Keeps a refused change set with its reason. Bounded: of an envelope
    /// that cannot be decoded only the first
    /// ``Limits/undecodableEnvelopeBytesKeptMax`` bytes are kept, and once a
    /// device's quarantine holds ``Limits/quarantineBytesPerDeviceMax``
    /// bytes its further refusals are recorded without their envelopes (the
    /// device keeps its own change sets). Returns the error as recorded.
    @discardableResult
    func quarantine(_ db: Database, hash: Data, device: DeviceID?, seq: UInt64?, error: LinliError, envelope: Data, now: UInt64,
                    decodable: Bool = true) throws -> LinliError {
        var kept = envelope
        var message = error.message
        if !decodable, envelope.count > Limits.undecodableEnvelopeBytesKeptMax {
            kept = envelope.prefix(Limits.undecodableEnvelopeBytesKeptMax)
            message += " (the first \(kept.count) of its \(envelope.count) bytes are kept)"
        }
        if let device, !kept.isEmpty {
            let held = try Int64.fetchOne(db, sql: "SELECT total(length(envelope)) FROM linli_quarantine WHERE device = ?",
                                          arguments: [device.data]) ?? 0
            if held.addingReportingOverflow(Int64(kept.count)).partialValue > Int64(Limits.quarantineBytesPerDeviceMax) {
                kept = Data()
                message += " (not kept here: this device's refused change sets already take \(held) bytes, quarantineBytesPerDeviceMax is \(Limits.quarantineBytesPerDeviceMax); the device keeps its own copy)"
            }
        }
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO linli_quarantine (received_at, device, seq, hash, code, message, envelope)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [Int64(now), device?.data, seq.map { Int64($0) }, hash, error.code.rawValue, message, kept])
        return message == error.message ? error : LinliError(error.code, message, hint: error.hint)
    }
}

extension ApplyPolicy {
    /// Whether cross-field rules are checked: by the gatekeeper, the policy
    /// that also refuses clocks far ahead, where a change set first enters
    /// the shared history. Replicas take what it accepted and do not judge
    /// again (a rule added in a later schema version must not split
    /// replicas over data accepted before).
    var checksTableRules: Bool { refuseFutureClocks }
}

/// A change set offered to a replica: its envelope, decoded now or later.
public struct OfferedChangeSet: Sendable {
    public let envelope: Data
    let decoded: Result<SignedChangeSet, LinliError>?
    /// For a replica that holds only some scopes: the sequence number of
    /// the device's previous change set inside those scopes (0 for none),
    /// as the server that filtered the pull says. With it, a change set may
    /// follow the device's head across change sets the replica never sees
    /// (PROTOCOL.md 2.2.1); without it, a gap is held.
    public var scopedPredecessor: UInt64?
    /// The authenticated device that sent it, when a server knows.
    public var sender: DeviceID?

    /// To be decoded by the replica, in parallel with others.
    public init(envelope: Data, scopedPredecessor: UInt64? = nil) {
        self.envelope = envelope
        decoded = nil
        self.scopedPredecessor = scopedPredecessor
    }

    /// Decoded now, so the caller can look at it first. `sender`: the
    /// authenticated device that sent it (a server's push), under which an
    /// envelope that does not decode is kept.
    public init(decoding envelope: Data, sender: DeviceID? = nil) {
        self.envelope = envelope
        decoded = Self.decode(envelope)
        self.sender = sender
    }

    public init(signed: SignedChangeSet) {
        envelope = signed.envelope
        decoded = .success(signed)
    }

    /// The decoded change set, when it was decoded and decodes.
    public var signed: SignedChangeSet? { try? decoded?.get() }

    static func decode(_ envelope: Data) -> Result<SignedChangeSet, LinliError> {
        do throws(LinliError) { return .success(try SignedChangeSet(envelope: envelope)) } catch { return .failure(error) }
    }
}

/// A value computed on another thread, waited for once.
final class Pending<T: Sendable>: @unchecked Sendable {
    // Written once by the worker before `done` is signalled, read once after.
    private var result: Result<T, any Error>?
    private let done = DispatchSemaphore(value: 0)

    init(_ work: @escaping @Sendable () throws -> T) {
        DispatchQueue.global(qos: .userInitiated).async {
            self.result = Result { try work() }
            self.done.signal()
        }
    }

    func wait() throws -> T {
        done.wait()
        return try result!.get()
    }
}

/// Maps over an array on all cores, keeping order.
enum ParallelMap {
    final class Slots<T>: @unchecked Sendable {
        // Each index is written by exactly one iteration, then read after
        // concurrentPerform returns; no two threads touch one slot.
        var values: [T?]
        init(count: Int) { values = Array(repeating: nil, count: count) }
    }

    static func run<Input: Sendable, Output: Sendable>(_ inputs: [Input], _ transform: @Sendable (Input) -> Output) -> [Output] {
        let count = inputs.count
        if count < 64 { return inputs.map(transform) }
        let slots = Slots<Output>(count: count)
        let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let chunk = (count + workers - 1) / workers
        slots.values.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let base = buffer
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let start = worker * chunk
                let end = min(start + chunk, count)
                guard start < end else { return }
                for index in start..<end { base[index] = transform(inputs[index]) }
            }
        }
        return slots.values.map { $0! }
    }
}
