import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import SwiftProtobuf
import Testing

@Suite struct LocalWriteTests {
    let alice = Fixtures.identity(1, user: "alice")
    let bob = Fixtures.identity(2, user: "bob")

    @Test func aCommitMakesOneSignedChangeSetLinkedToThePrevious() throws {
        let store = try Fixtures.store(knowing: [alice])
        var id = RowID.random()
        let first = try store.write(as: alice) { tx in
            id = try tx.create("person", ["grid": .text("G1"), "name": .text("张三"), "phone": .text("13800138000")])
        }
        let second = try store.write(as: alice) { tx in try tx.update("person", id, ["phone": .text("13900139000")]) }
        #expect(first.count == 1 && second.count == 1)
        #expect(first[0].header.seq == 1 && first[0].header.prev.isEmpty)
        #expect(second[0].header.seq == 2 && second[0].header.prev == first[0].hash)
        #expect(second[0].header.hlc > first[0].header.hlc)
        #expect(second[0].header.user == "alice" && second[0].header.scope == .grid("G1"))
        // The update replaced exactly the survivor the first change set made.
        let phoneWrite = try #require(second[0].changeSet.rows.first?.writes.first { $0.field == "phone" })
        #expect(phoneWrite.replaces.count == 1 && phoneWrite.replaces[0].device == alice.device && phoneWrite.replaces[0].seq == 1)
        let row = try #require(try store.row("person", id))
        #expect(row["phone"] == .text("13900139000") && row["name"] == .text("张三"))
        #expect(first[0].verify(with: alice.key.publicKey) && second[0].verify(with: alice.key.publicKey))
    }

    @Test func anEditThatTouchesTwoScopesBecomesTwoChangeSets() throws {
        let store = try Fixtures.store(knowing: [alice])
        let made = try store.write(as: alice) { tx in
            try tx.create("person", ["grid": .text("G1"), "name": .text("甲")])
            try tx.create("person", ["grid": .text("G2"), "name": .text("乙")])
            try tx.create("notice", ["title": .text("停水通知")])
        }
        #expect(made.map(\.header.scope) == [.grid("G1"), .grid("G2"), .public])
        #expect(made.map(\.header.seq) == [1, 2, 3])
        #expect(made[1].header.prev == made[0].hash && made[2].header.prev == made[1].hash)
    }

    @Test func badLocalInputIsRefusedWithAClearMessageAndNothingIsWritten() throws {
        let store = try Fixtures.store(knowing: [alice])
        #expect(throws: LinliError.self) { try store.write(as: alice) { tx in try tx.create("person", ["grid": .text("G1")]) } }
        do {
            try store.write(as: alice) { tx in try tx.create("person", ["grid": .text("G1"), "name": .text("x"), "birth_date": .text("2023-02-29")]) }
            Issue.record("an impossible date was accepted")
        } catch let error as LinliError {
            #expect(error.code == .invalidInput && error.message.contains("birth_date"))
        }
        do {
            try store.write(as: alice) { tx in try tx.create("person", ["grid": .text("G1"), "name": .text("x"), "shoe": .text("42")]) }
            Issue.record("an undeclared field was accepted")
        } catch let error as LinliError {
            #expect(error.message.contains("shoe"))
        }
        do {
            try store.write(as: alice) { tx in try tx.update("person", RowID.random(), ["name": .text("x")]) }
            Issue.record("an update of a missing row was accepted")
        } catch let error as LinliError {
            #expect(error.code == .notFound)
        }
        #expect(try store.counts().changeSets == 0)
    }

    @Test func theGridOfARecordCannotChange() throws {
        let store = try Fixtures.store(knowing: [alice])
        var id = RowID.random()
        try store.write(as: alice) { tx in id = try tx.create("person", ["grid": .text("G1"), "name": .text("x")]) }
        #expect(throws: LinliError.self) { try store.write(as: alice) { tx in try tx.update("person", id, ["grid": .text("G2")]) } }
    }
}

@Suite struct MergeTests {
    let alice = Fixtures.identity(1, user: "alice")
    let bob = Fixtures.identity(2, user: "bob")
    let carol = Fixtures.identity(3, user: "carol")

    func threeReplicas() throws -> (ReplicaStore, ReplicaStore, ReplicaStore) {
        let known = [alice, bob, carol]
        return (try Fixtures.store(knowing: known), try Fixtures.store(knowing: known), try Fixtures.store(knowing: known))
    }

    @Test func concurrentEditsAreBothKeptAndAWriteThatReplacesBothResolvesThem() throws {
        let (a, b, c) = try threeReplicas()
        var id = RowID.random()
        let created = try a.write(as: alice) { tx in id = try tx.create("person", ["grid": .text("G1"), "name": .text("王五"), "phone": .text("13800000001")]) }
        _ = try b.apply(created)
        _ = try c.apply(created)
        let fromA = try a.write(as: alice) { tx in try tx.update("person", id, ["phone": .text("13800000002")]) }
        let fromB = try b.write(as: bob) { tx in try tx.update("person", id, ["phone": .text("13800000003")]) }
        for store in [a, b, c] { _ = try store.apply(fromA + fromB) }

        let conflicts = try c.conflicts()
        #expect(conflicts.count == 1)
        let conflict = try #require(conflicts.first)
        #expect(conflict.table == "person" && conflict.row == id && conflict.field == "phone" && conflict.kind == .concurrentEdits)
        #expect(Set(conflict.values.map(\.value)) == [.text("13800000002"), .text("13800000003")])
        #expect(Set(conflict.values.map(\.user)) == ["alice", "bob"])
        // The shown value is the one with the greater clock, on every replica.
        let shown = try #require(conflict.values.first { $0.shown })
        #expect(shown.hlc == conflict.values.map(\.hlc).max())
        for store in [a, b, c] { #expect(try store.row("person", id)?["phone"] == shown.value) }
        #expect(try a.stateDigest() == b.stateDigest() && b.stateDigest() == c.stateDigest())

        // Carol (staff) picks a value: her write replaces both survivors.
        let resolution = try c.write(as: carol) { tx in try tx.update("person", id, ["phone": .text("13800000009")]) }
        #expect(resolution[0].changeSet.rows[0].writes[0].replaces.count == 2)
        for store in [a, b] { _ = try store.apply(resolution) }
        for store in [a, b, c] {
            #expect(try store.conflicts().isEmpty)
            #expect(try store.row("person", id)?["phone"] == .text("13800000009"))
        }
    }

    @Test func aDeleteThatRacesAnEditIsAConflictNotASilentWinner() throws {
        let (a, b, _) = try threeReplicas()
        var id = RowID.random()
        let created = try a.write(as: alice) { tx in id = try tx.create("person", ["grid": .text("G1"), "name": .text("赵六")]) }
        _ = try b.apply(created)
        let deletion = try a.write(as: alice) { tx in try tx.delete("person", id) }
        let edit = try b.write(as: bob) { tx in try tx.update("person", id, ["phone": .text("13700000000")]) }
        _ = try a.apply(edit)
        _ = try b.apply(deletion)
        #expect(try a.stateDigest() == b.stateDigest())
        let conflicts = try a.conflicts()
        #expect(conflicts.map(\.field) == ["phone"])
        #expect(conflicts.first?.kind == .deleteVersusEdit)
        #expect(try a.row("person", id)?[MergeRules.deletedField] == .boolean(true))
        // Restoring with the edited value settles it.
        let restored = try b.write(as: bob) { tx in try tx.restore("person", id, ["name": .text("赵六"), "phone": .text("13700000000")]) }
        _ = try a.apply(restored)
        #expect(try a.conflicts().isEmpty && b.conflicts().isEmpty)
        #expect(try a.row("person", id)?[MergeRules.deletedField] == .boolean(false))
        #expect(try a.row("person", id)?["phone"] == .text("13700000000"))
    }

    @Test func aGapIsHeldUntilTheMissingChangeSetArrives() throws {
        let (a, b, _) = try threeReplicas()
        var id = RowID.random()
        let one = try a.write(as: alice) { tx in id = try tx.create("person", ["grid": .text("G1"), "name": .text("x")]) }
        let two = try a.write(as: alice) { tx in try tx.update("person", id, ["name": .text("y")]) }
        let three = try a.write(as: alice) { tx in try tx.update("person", id, ["name": .text("z")]) }
        #expect(try b.apply(three).map(\.status) == [.held(missingFrom: 1)])
        #expect(try b.apply(two).map(\.status) == [.held(missingFrom: 1)])
        #expect(try b.row("person", id) == nil)
        #expect(try b.apply(one).map(\.status) == [.applied])
        #expect(try b.counts().held == 0 && b.counts().changeSets == 3)
        #expect(try b.row("person", id)?["name"] == .text("z"))
        #expect(try a.stateDigest() == b.stateDigest())
    }

    @Test func duplicateDeliveryChangesNothing() throws {
        let (a, b, _) = try threeReplicas()
        let made = try a.write(as: alice) { tx in try tx.create("person", ["grid": .text("G1"), "name": .text("x")]) }
        #expect(try b.apply(made).map(\.status) == [.applied])
        let digest = try b.stateDigest()
        #expect(try b.apply(made + made).map(\.status) == [.duplicate, .duplicate])
        #expect(try b.stateDigest() == digest && b.counts().changeSets == 1 && b.counts().quarantined == 0)
    }

    @Test func aForkIsRefusedKeptAndQuarantinesTheDevice() throws {
        let (a, _, _) = try threeReplicas()
        let row = RowID.random()
        let original = try Fixtures.signed(alice, seq: 1, prev: Data(), hlc: 1 << 16, rows: [
            RowChange(table: "person", row: row, writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("a"))]),
        ])
        let clone = try Fixtures.signed(alice, seq: 1, prev: Data(), hlc: 2 << 16, rows: [
            RowChange(table: "person", row: row, writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("b"))]),
        ])
        let later = try Fixtures.signed(alice, seq: 2, prev: original.hash, hlc: 3 << 16, rows: [
            RowChange(table: "person", row: row, writes: [FieldWrite(field: "name", value: .text("c"))]),
        ])
        #expect(try a.apply([original]).map(\.status) == [.applied])
        let outcome = try #require(try a.apply([clone]).first)
        #expect(outcome.error?.code == .fork)
        #expect(outcome.error?.message.contains("forked") == true)
        #expect(try a.apply([later]).first?.error?.code == .deviceQuarantined)
        let kept = try a.quarantined()
        #expect(kept.map(\.code) == [.fork, .deviceQuarantined])
        #expect(kept.map(\.envelope) == [clone.envelope, later.envelope])
        #expect(try a.forkedDevices()[alice.device] == 1)
        #expect(try a.row("person", row)?["name"] == .text("a"))
    }

    @Test func aBrokenChainIsRefused() throws {
        let (a, _, _) = try threeReplicas()
        let row = RowID.random()
        let first = try Fixtures.signed(alice, seq: 1, prev: Data(), hlc: 1 << 16, rows: [
            RowChange(table: "person", row: row, writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("a"))]),
        ])
        let unlinked = try Fixtures.signed(alice, seq: 2, prev: Data(repeating: 7, count: 32), hlc: 2 << 16, rows: [
            RowChange(table: "person", row: row, writes: [FieldWrite(field: "name", value: .text("b"))]),
        ])
        _ = try a.apply([first])
        #expect(try a.apply([unlinked]).first?.error?.code == .brokenChain)
        #expect(try a.quarantined().count == 1)
    }

    @Test func changeSetsOfUnknownDevicesAndBadSignaturesAreRefusedAndKept() throws {
        let stranger = Fixtures.identity(99)
        let (a, _, _) = try threeReplicas()
        let strange = try Fixtures.signed(stranger, seq: 1, prev: Data(), hlc: 1 << 16, rows: [
            RowChange(table: "person", row: RowID.random(), writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("a"))]),
        ])
        #expect(try a.apply([strange]).first?.error?.code == .unknownKey)
        // Claims to be alice and names alice's key, but is signed with bob's.
        let header = ChangeSetHeader(device: alice.device, keyID: alice.key.publicKey.keyID, seq: 1, prev: Data(),
                                     hlc: HLCTimestamp(rawValue: 1 << 16), user: "mallory", schemaVersion: 1, scope: .grid("G1"))
        let body: Data = try ChangeSetWire.message(from: ChangeSet(header: header, rows: strange.changeSet.rows)).serializedBytes()
        var envelope = Linli_V1_SignedChangeSet()
        envelope.body = body
        envelope.signature = bob.key.sign(SignedChangeSet.signingMessage(hash: Blake2b256.hash(body)))
        #expect(try a.apply([try envelope.serializedBytes()]).first?.error?.code == .badSignature)
        // Claims to be alice with a key alice was never certified for: it
        // waits, as from an unknown key, for a certificate that never comes.
        let impostor = DeviceIdentity(device: alice.device, key: bob.key, user: "mallory")
        let unknownKey = try Fixtures.signed(impostor, seq: 1, prev: Data(), hlc: 1 << 16, rows: strange.changeSet.rows)
        #expect(try a.apply([unknownKey]).first?.error?.code == .unknownKey)
        #expect(try a.quarantined().map(\.code) == [.unknownKey, .badSignature, .unknownKey])
        #expect(try a.forkedDevices().isEmpty)
    }

    @Test func changingAnySingleByteOfASignedChangeSetMakesItRefused() throws {
        let (a, _, _) = try threeReplicas()
        let made = try Fixtures.signed(alice, seq: 1, prev: Data(), hlc: 5 << 16, rows: [
            RowChange(table: "person", row: RowID.random(), writes: [
                FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("李四")),
                FieldWrite(field: "visits", value: .integer(3)), FieldWrite(field: "care", value: .boolean(true)),
            ]),
        ])
        var tampered: [Data] = []
        for offset in 0..<made.envelope.count {
            for flip: UInt8 in [0x01, 0x80] {
                var bytes = made.envelope
                bytes[bytes.startIndex + offset] ^= flip
                tampered.append(bytes)
            }
        }
        let outcomes = try a.apply(tampered)
        let accepted = outcomes.enumerated().filter { !$0.element.isRefused }
        #expect(accepted.isEmpty, "accepted tampered copies at byte offsets \(accepted.map { $0.offset / 2 })")
        #expect(try a.counts().changeSets == 0)
        #expect(try a.apply([made]).map(\.status) == [.applied])
    }

    @Test func schemaAndScopeViolationsAreRefusedWithTheReason() throws {
        let (a, _, _) = try threeReplicas()
        let row = RowID.random()
        let badType = try Fixtures.signed(alice, seq: 1, prev: Data(), hlc: 1 << 16, rows: [
            RowChange(table: "person", row: row, writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "visits", value: .text("many"))]),
        ])
        let refused = try #require(try a.apply([badType]).first?.error)
        #expect(refused.code == .schemaViolation && refused.message.contains("person.visits"))

        let created = try Fixtures.signed(bob, seq: 1, prev: Data(), hlc: 1 << 16, scope: .grid("G1"), rows: [
            RowChange(table: "person", row: row, writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("a"))]),
        ])
        #expect(try a.apply([created]).first?.status == .applied)
        // Carol writes into bob's G1 record claiming grid G2.
        let intrusion = try Fixtures.signed(carol, seq: 1, prev: Data(), hlc: 2 << 16, scope: .grid("G2"), rows: [
            RowChange(table: "person", row: row, writes: [FieldWrite(field: "name", value: .text("b"))]),
        ])
        #expect(try a.apply([intrusion]).first?.error?.code == .outOfScope)
        // Refused in their place in carol's chain: her next ones link on.
        let wrongGrid = try Fixtures.signed(carol, seq: 2, prev: intrusion.hash, hlc: 2 << 16, scope: .grid("G2"), rows: [
            RowChange(table: "person", row: RowID.random(), writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("b"))]),
        ])
        #expect(try a.apply([wrongGrid]).first?.error?.code == .outOfScope)
        let noticeInGrid = try Fixtures.signed(carol, seq: 3, prev: wrongGrid.hash, hlc: 2 << 16, scope: .grid("G2"), rows: [
            RowChange(table: "notice", row: RowID.random(), writes: [FieldWrite(field: "title", value: .text("x"))]),
        ])
        #expect(try a.apply([noticeInGrid]).first?.error?.code == .outOfScope)
        #expect(try a.row("person", row)?["name"] == .text("a"))
        #expect(try a.quarantined().count == 4)
    }

    @Test func whatANewerSchemaAddsIsKeptThoughNotShown() throws {
        let (a, _, _) = try threeReplicas()
        let row = RowID.random()
        let newer = try Fixtures.signed(alice, seq: 1, prev: Data(), hlc: 1 << 16, rows: [
            RowChange(table: "person", row: row, writes: [
                FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("a")),
                FieldWrite(field: "wechat", value: .text("wx123")),
            ]),
            RowChange(table: "pet", row: RowID.random(), writes: [FieldWrite(field: "kind", value: .text("cat"))]),
        ], schemaVersion: 2)
        #expect(try a.apply([newer]).first?.status == .applied)
        let state = try a.fieldState()
        #expect(state[MemoryFieldState.Key(table: "person", row: row, field: "wechat")]?.first?.value == .text("wx123"))
        #expect(state.keys.contains { $0.table == "pet" })
        #expect(try a.row("person", row)?["name"] == .text("a"))
        // The same from a writer on this schema version is a violation.
        let sameVersion = try Fixtures.signed(bob, seq: 1, prev: Data(), hlc: 1 << 16, rows: [
            RowChange(table: "person", row: RowID.random(), writes: [FieldWrite(field: "wechat", value: .text("wx"))]),
        ])
        #expect(try a.apply([sameVersion]).first?.error?.code == .schemaViolation)
    }

    @Test func theGatekeeperRefusesAClockFarInTheFuture() throws {
        let now: UInt64 = 1_790_000_000_000
        let store = try Fixtures.store(knowing: [alice], clock: { now })
        let ahead = try Fixtures.signed(alice, seq: 1, prev: Data(), hlc: (now + 3_600_000) << 16, rows: [
            RowChange(table: "person", row: RowID.random(), writes: [FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("a"))]),
        ])
        let error = try #require(try store.apply([ahead], policy: .gatekeeper).first?.error)
        #expect(error.code == .clockAhead && error.message.contains("60 minutes ahead"))
        // The refusal is final here (offered again, it is refused again);
        // a replica, which takes what the server accepted, does not check.
        #expect(try store.apply([ahead], policy: .replica).first?.error?.code == .clockAhead)
        let replica = try Fixtures.store(knowing: [alice], clock: { now })
        #expect(try replica.apply([ahead], policy: .replica).first?.status == .applied)
    }

    @Test func anOversizedOrUndecodableEnvelopeIsRefusedAndKept() throws {
        let (a, _, _) = try threeReplicas()
        let outcomes = try a.apply([Data(repeating: 0xFF, count: 40), Data(count: Limits.changeSetBytesMax + 1)])
        #expect(outcomes.map { $0.error?.code } == [.malformed, .overLimit])
        #expect(try a.quarantined().count == 2)
    }
}

@Suite struct RebuildAndDurabilityTests {
    @Test func rebuildingFromTheLogGivesTheSameDigestAndViews() throws {
        let schedule = try ConvergenceSchedule(seed: 4242)
        try schedule.run()
        for store in schedule.stores {
            let digest = try store.stateDigest()
            let conflicts = try store.conflicts()
            let views = try store.database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM person ORDER BY id") }
            try store.rebuild()
            #expect(try store.stateDigest() == digest)
            #expect(try store.conflicts() == conflicts)
            #expect(try store.database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM person ORDER BY id") } == views)
        }
    }

    @Test func aFileReplicaUsesWALAndKeepsItsStateAcrossReopening() throws {
        let folder = Fixtures.TemporaryDirectory()
        let path = folder.path("replica.sqlite")
        let alice = Fixtures.identity(1)
        var digest = Data()
        do {
            let store = try Fixtures.store(path: path, knowing: [alice])
            try store.write(as: alice) { tx in try tx.create("person", ["grid": .text("G1"), "name": .text("x")]) }
            digest = try store.stateDigest()
            #expect(try store.database.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") } == "wal")
        }
        let reopened = try ReplicaStore(path: path, schema: Fixtures.schema)
        #expect(try reopened.stateDigest() == digest)
        #expect(try reopened.database.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") } == "ok")
        // The chain goes on from where it was.
        let next = try reopened.write(as: alice) { tx in try tx.create("person", ["grid": .text("G1"), "name": .text("y")]) }
        #expect(next.first?.header.seq == 2)
    }
}

@Suite struct SchemaUpgradeTests {
    @Test func valuesKeptFromANewerSchemaShowOnceThisReplicaUpgrades() throws {
        let folder = Fixtures.TemporaryDirectory()
        let path = folder.path("replica.sqlite")
        let alice = Fixtures.identity(1)
        let row = RowID.random()
        do {
            let old = try Fixtures.store(path: path, knowing: [alice])
            let newer = try Fixtures.signed(alice, seq: 1, prev: Data(), hlc: 1 << 16, rows: [
                RowChange(table: "person", row: row, writes: [
                    FieldWrite(field: "grid", value: .text("G1")), FieldWrite(field: "name", value: .text("a")),
                    FieldWrite(field: "wechat", value: .text("wx123")),
                ]),
            ], schemaVersion: 2)
            #expect(try old.apply([newer]).first?.status == .applied)
            #expect(try old.row("person", row)?["wechat"] == nil)
        }
        var upgraded = Fixtures.schema
        upgraded.version = 2
        upgraded.tables[0].fields.append(FieldSchema("wechat", .text, label: "微信"))
        let store = try ReplicaStore(path: path, schema: upgraded)
        #expect(try store.row("person", row)?["wechat"] == .text("wx123"))
        #expect(try store.row("person", row)?["name"] == .text("a"))
    }

    @Test func aSequenceNumberTooLargeToStoreIsRefusedNotACrash() throws {
        let alice = Fixtures.identity(1)
        let store = try Fixtures.store(knowing: [alice])
        let header = ChangeSetHeader(device: alice.device, keyID: alice.key.publicKey.keyID, seq: 1, prev: Data(),
                                     hlc: HLCTimestamp(rawValue: 1), user: "a", schemaVersion: 1, scope: .public)
        var changeSet = ChangeSet(header: header, rows: [RowChange(table: "notice", row: RowID.random(), writes: [FieldWrite(field: "title", value: .text("t"))])])
        let valid = try SignedChangeSet.sign(changeSet, with: alice.key)
        changeSet.header.seq = UInt64(Int64.max) + 1
        #expect(throws: LinliError.self) { try SignedChangeSet.sign(changeSet, with: alice.key) }
        // The same bytes built by hand (seq is field 4, a varint) are refused.
        var wire = Linli_V1_ChangeSet(); wire.format = 1; wire.device = alice.device.data; wire.keyID = alice.key.publicKey.keyID
        wire.seq = UInt64.max; wire.hlc = 1; wire.scope = "public"
        var rowWire = Linli_V1_RowChange(); rowWire.table = "notice"; rowWire.row = RowID.random().data
        var write = Linli_V1_FieldWrite(); write.field = "title"; write.value.text = "t"; rowWire.writes = [write]; wire.rows = [rowWire]
        var envelope = Linli_V1_SignedChangeSet(); envelope.body = try wire.serializedBytes(); envelope.signature = valid.signature
        let outcome = try #require(try store.apply([try envelope.serializedBytes()]).first)
        #expect(outcome.error?.code == .overLimit)
        #expect(try store.quarantined().count == 1)
    }
}

@Suite struct SyncStateTests {
    @Test func aPageAndItsCursorAreStoredTogetherAndAResumedPullDuplicatesNothing() throws {
        let alice = Fixtures.identity(1)
        let source = try Fixtures.store(knowing: [alice])
        var row = RowID.random()
        try source.write(as: alice) { tx in row = try tx.create("person", ["grid": .text("G1"), "name": .text("n0")]) }
        for index in 1..<10 { try source.write(as: alice) { tx in try tx.update("person", row, ["name": .text("n\(index)")]) } }
        let stream = try source.changeSets(after: 0)
        #expect(stream.count == 10)

        let folder = Fixtures.TemporaryDirectory()
        let path = folder.path("pulling.sqlite")
        do {
            let replica = try Fixtures.store(path: path, knowing: [alice])
            let page = Array(stream.prefix(4))
            _ = try replica.applyPage(page.map(\.envelope), cursor: SyncCursor(name: "server", position: page.last!.position))
            #expect(try replica.cursor("server") == page.last!.position)
        }
        // The sync was cut off; the replica reopens and resumes from its cursor,
        // and a page delivered twice changes nothing.
        let replica = try ReplicaStore(path: path, schema: Fixtures.schema)
        let resumeAt = try replica.cursor("server")
        let rest = try source.changeSets(after: resumeAt)
        #expect(rest.count == 6 && rest.first!.position == resumeAt + 1)
        let outcomes = try replica.applyPage((Array(stream.prefix(4)) + rest).map(\.envelope), cursor: SyncCursor(name: "server", position: rest.last!.position))
        #expect(outcomes.filter { $0.status == .duplicate }.count == 4 && outcomes.filter { $0.status == .applied }.count == 6)
        #expect(try replica.stateDigest() == source.stateDigest())
        #expect(try replica.cursor("server") == stream.last!.position)
    }

    @Test func theOutboxHoldsWhatThePeerHasNotAcknowledged() throws {
        let alice = Fixtures.identity(1)
        let phone = try Fixtures.store(knowing: [alice])
        var row = RowID.random()
        try phone.write(as: alice) { tx in row = try tx.create("person", ["grid": .text("G1"), "name": .text("a")]) }
        try phone.write(as: alice) { tx in try tx.update("person", row, ["name": .text("b")]) }
        try phone.write(as: alice) { tx in try tx.update("person", row, ["name": .text("c")]) }
        #expect(try phone.outbox(device: alice.device).map(\.header.seq) == [1, 2, 3])
        try phone.acknowledge(device: alice.device, through: 2)
        #expect(try phone.outbox(device: alice.device).map(\.header.seq) == [3])
        try phone.acknowledge(device: alice.device, through: 1)
        #expect(try phone.outbox(device: alice.device).map(\.header.seq) == [3], "acknowledgements only move forward")
        #expect(throws: LinliError.self) { try phone.applyPage(Array(repeating: Data(), count: Limits.changeSetsPerBatchMax + 1), cursor: SyncCursor(name: "s", position: 1)) }
    }
}
