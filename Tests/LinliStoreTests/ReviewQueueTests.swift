import Foundation
import GRDB
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

/// A clock the test moves by hand, shared by every store of a world, so
/// the order of offline edits and the age of review items are decided here.
final class ReviewClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64

    init(_ start: UInt64) { value = start }

    var now: UInt64 { lock.withLock { value } }

    func advance(_ milliseconds: UInt64) { lock.withLock { value += milliseconds } }
}

/// A deployment with the community schema pack: an authority, three
/// inspectors (李明 and 王芳 cover G1 to G3, 赵磊 only G1) and a member of
/// the central staff, whose certificates every replica receives.
struct ReviewWorld {
    static let schemaFile = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocol/schema/community-v1.json")

    let schema: Schema
    let clock: ReviewClock
    let root = SigningKey(seed: SecretBytes(copying: Data(repeating: 0xD7, count: 32)))
    let authority: DeviceIdentity
    let authorityStore: ReplicaStore
    let li = Fixtures.identity(71, user: "李明")
    let wang = Fixtures.identity(72, user: "王芳")
    let zhao = Fixtures.identity(73, user: "赵磊")
    let staff = Fixtures.identity(74, user: "张主任")

    init() throws {
        schema = try JSONDecoder().decode(Schema.self, from: Data(contentsOf: Self.schemaFile))
        let clock = ReviewClock(1_790_000_000_000)
        self.clock = clock
        authority = DeviceIdentity(device: Authority.deviceID(root: root.publicKey), key: root, user: "admin")
        authorityStore = try ReplicaStore(path: nil, schema: schema, authority: root.publicKey, clock: { clock.now })
        for (identity, role, grids) in [(li, Role.inspector, ["G1", "G2", "G3"]), (wang, .inspector, ["G1", "G2", "G3"]),
                                        (zhao, .inspector, ["G1"]), (staff, .staff, [])] {
            _ = try authorityStore.issueCertificate(as: authority, device: identity.device, publicKey: identity.key.publicKey,
                                                    role: role, grids: Set(grids))
        }
    }

    /// A replica (a phone, the server) that knows every certificate.
    func replica() throws -> ReplicaStore {
        let clock = clock
        let store = try ReplicaStore(path: nil, schema: schema, authority: root.publicKey, clock: { clock.now })
        let outcomes = try store.apply(authorityStore.changeSets(scopes: [.system]).map(\.envelope))
        #expect(outcomes.count == 4 && outcomes.allSatisfy { $0.status == .applied }, "\(outcomes)")
        return store
    }

    /// Offers change sets to a store and expects every one to be merged.
    func merge(_ changeSets: [SignedChangeSet], into store: ReplicaStore, policy: ApplyPolicy = .gatekeeper,
               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let outcomes = try store.apply(changeSets, policy: policy)
        #expect(outcomes.count == changeSets.count && outcomes.allSatisfy { $0.status == .applied }, "\(outcomes)",
                sourceLocation: sourceLocation)
    }

    /// Offers a store everything another holds (what it has already is a
    /// duplicate), and expects nothing to be refused or held.
    func sync(_ source: ReplicaStore, to target: ReplicaStore, policy: ApplyPolicy = .replica,
              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let outcomes = try target.apply(source.changeSets().map(\.envelope), policy: policy)
        #expect(outcomes.allSatisfy { $0.status == .applied || $0.status == .duplicate }, "\(outcomes)", sourceLocation: sourceLocation)
    }

    static func person(_ grid: String, _ name: String, _ extra: [String: Value] = [:]) -> [String: Value] {
        ["grid": .text(grid), "name": .text(name), "residence_type": .text("户籍人口")].merging(extra) { $1 }
    }
}

/// The review queue after real merges: each kind of item appears when
/// replicas' change sets meet on the server, and is gone once a member of
/// staff resolves it, with the resolution kept as an audited record.
@Suite struct ReviewQueueTests {
    static let idA = "110101199003074514"
    static let idB = "320102198801010014"
    static let idC = "330106197505200027"
    static let idD = "510107199211110033"

    /// A person 李明 records on his phone, known to the server and to
    /// 王芳's phone; then each of them changes its phone number offline,
    /// 王芳 a second later.
    struct PhoneConflict {
        let person: RowID
        let created: [SignedChangeSet]
        let fromLi: [SignedChangeSet]
        let fromWang: [SignedChangeSet]
    }

    func phoneConflict(_ world: ReviewWorld, server: ReplicaStore, phoneLi: ReplicaStore, phoneWang: ReplicaStore,
                       grid: String = "G1", name: String = "陈静", original: String = "13800138000",
                       li: String = "13900139000", wang: String = "13700137000", others: [ReplicaStore] = []) throws -> PhoneConflict {
        var person = RowID.random()
        let created = try phoneLi.write(as: world.li) { tx in
            person = try tx.create("person", ReviewWorld.person(grid, name, ["phone": .text(original)]))
        }
        try world.sync(phoneLi, to: server, policy: .gatekeeper)
        for store in [phoneWang] + others { try world.sync(phoneLi, to: store) }
        world.clock.advance(1_000)
        let fromLi = try phoneLi.write(as: world.li) { tx in try tx.update("person", person, ["phone": .text(li)]) }
        world.clock.advance(1_000)
        let fromWang = try phoneWang.write(as: world.wang) { tx in try tx.update("person", person, ["phone": .text(wang)]) }
        world.clock.advance(1_000)
        return PhoneConflict(person: person, created: created, fromLi: fromLi, fromWang: fromWang)
    }

    /// The resolution records (``ReviewSchema``) written by these change
    /// sets, as the store shows them.
    func auditRecords(_ changeSets: [SignedChangeSet], in store: ReplicaStore) throws -> [[String: Value]] {
        try changeSets.flatMap(\.changeSet.rows).filter { $0.table == ReviewSchema.resolution }.map { row in
            try #require(try store.row(ReviewSchema.resolution, row.row))
        }
    }

    /// Every resolution the store holds verifies: signed by staff, and its
    /// audit row names the write it explains and exactly what that replaced.
    func expectAuditClean(_ store: ReplicaStore, count: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let entries = try store.auditResolutions()
        #expect(entries.count == count, sourceLocation: sourceLocation)
        for entry in entries {
            #expect(entry.verified, "\(entry.decision) \(entry.subject): \(entry.problems)", sourceLocation: sourceLocation)
            #expect(entry.user == "张主任", sourceLocation: sourceLocation)
        }
    }

    func resolutionCount(_ store: ReplicaStore) throws -> Int {
        try store.database.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM \(ReviewSchema.resolution) WHERE _deleted = 0") ?? -1
        }
    }

    /// The `replaced` JSON of a resolution record.
    func replaced(_ value: Value?) throws -> [[String: String]] {
        let text = try #require(value?.text)
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: String]])
    }

    func thrown(_ body: () throws -> Void) -> LinliError? {
        do {
            try body()
            return nil
        } catch let error as LinliError {
            return error
        } catch {
            Issue.record("not a LinliError: \(error)")
            return nil
        }
    }

    // MARK: 1. Conflicts

    @Test func aConcurrentEditIsOneConflictItemAndTheStaffChoiceSettlesItOnEveryReplica() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        let made = try phoneConflict(world, server: server, phoneLi: phoneLi, phoneWang: phoneWang)
        #expect(try server.reviewQueue().isEmpty, "one value per field before the edits meet")
        try world.merge(made.fromLi + made.fromWang, into: server)

        let queue = try server.reviewQueue()
        #expect(queue.count == 1)
        let item = try #require(queue.first)
        #expect(item.kind == .conflict)
        #expect(item.table == "person" && item.row == made.person.hex && item.field == "phone")
        #expect(item.grid == "G1" && item.scope == "grid:G1")
        #expect(item.values.count == 2)
        let byLi = try #require(item.values.first { $0.user == "李明" })
        let byWang = try #require(item.values.first { $0.user == "王芳" })
        #expect(byLi.value == .text("13900139000") && byLi.dot.device == world.li.device.hex)
        #expect(byWang.value == .text("13700137000") && byWang.dot.device == world.wang.device.hex)
        #expect(byLi.hlc == made.fromLi[0].header.hlc.rawValue && byWang.hlc == made.fromWang[0].header.hlc.rawValue)
        #expect(item.values.filter(\.shown).count == 1)
        #expect(byWang.shown, "the later edit is shown meanwhile")
        #expect(try server.row("person", made.person)?["phone"] == .text("13700137000"))
        #expect(item.detectedAt == made.fromWang[0].header.hlc.milliseconds)
        #expect(try server.reviewQueue(filter: ReviewFilter(kind: .conflict)).map(\.id) == [item.id])

        // Shown alone, with every write the field had.
        let shown = try #require(try server.reviewItem(item.id))
        #expect(shown.values == item.values)
        #expect(!shown.history.isEmpty)
        #expect(shown.history.map(\.value) == [.text("13800138000"), .text("13900139000"), .text("13700137000")])
        #expect(shown.history.map(\.user) == ["李明", "李明", "王芳"])
        #expect(shown.history.map(\.survives) == [false, true, true])
        #expect(shown.history.map(\.replaced) == [0, 1, 1])
        #expect(shown.history.first?.time == made.created.first?.header.hlc.milliseconds)

        // 张主任 keeps 李明's number, the one not shown.
        let index = try #require(item.values.firstIndex { $0.user == "李明" })
        let note = "已电话核实，本人号码为 13900139000"
        let resolution = try server.resolve([(item, .choose(index))], note: note, as: world.staff)
        #expect(resolution.count == 1)
        #expect(resolution.first?.header.user == "张主任" && resolution.first?.header.scope == .grid("G1"))
        #expect(try server.reviewQueue().isEmpty)
        #expect(try server.reviewItem(item.id) == nil)
        #expect(try server.row("person", made.person)?["phone"] == .text("13900139000"))
        #expect(try server.conflicts().isEmpty)

        let audit = try auditRecords(resolution, in: server)
        #expect(audit.count == 1)
        #expect(try resolutionCount(server) == 1)
        let record = try #require(audit.first)
        #expect(record["decision"] == .text("chosen"))
        #expect(record["kind"] == .text("conflict"))
        #expect(record["item"] == .text(item.id))
        #expect(record["note"] == .text(note))
        #expect(record["subject_table"] == .text("person") && record["subject_row"] == .text(made.person.hex)
            && record["subject_field"] == .text("phone"))
        #expect(record["value"] == .text("13900139000"))
        let old = try replaced(record["replaced"])
        #expect(Set(old.compactMap { $0["value"] }) == ["13900139000", "13700137000"])
        #expect(Set(old.compactMap { $0["user"] }) == ["李明", "王芳"])
        #expect(Set(old.compactMap { $0["device"] }) == [world.li.device.hex, world.wang.device.hex])
        try expectAuditClean(server, count: 1)

        // 李明's phone learns of 王芳's edit (a conflict there too), then of
        // the resolution: it shows the chosen number and no conflict.
        try world.merge(made.fromWang, into: phoneLi, policy: .replica)
        #expect(try phoneLi.conflicts().count == 1)
        #expect(try phoneLi.reviewQueue().map(\.id) == [item.id], "the same conflict has the same id on every replica")
        try world.merge(resolution, into: phoneLi, policy: .replica)
        #expect(try phoneLi.row("person", made.person)?["phone"] == .text("13900139000"))
        #expect(try phoneLi.conflicts().isEmpty)
        #expect(try phoneLi.reviewQueue().isEmpty)
        #expect(try phoneLi.stateDigest() == server.stateDigest())
        try expectAuditClean(phoneLi, count: 1)
    }

    // MARK: 2. Only what was judged

    @Test func aValueThatArrivesAfterTheItemWasReadStaysInConflict() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica(), phoneZhao = try world.replica()
        let made = try phoneConflict(world, server: server, phoneLi: phoneLi, phoneWang: phoneWang, others: [phoneZhao])
        try world.merge(made.fromLi + made.fromWang, into: server)
        let stale = try #require(try server.reviewQueue().first)
        #expect(stale.values.count == 2)

        // 赵磊 had not synced since the person was recorded.
        let fromZhao = try phoneZhao.write(as: world.zhao) { tx in try tx.update("person", made.person, ["phone": .text("13600136000")]) }
        world.clock.advance(1_000)
        try world.merge(fromZhao, into: server)
        #expect(try server.reviewQueue().first?.values.count == 3)

        let index = try #require(stale.values.firstIndex { $0.user == "李明" })
        let resolution = try server.resolve([(stale, .choose(index))], note: "按李明核实的号码", as: world.staff)
        let conflicts = try server.conflicts()
        #expect(conflicts.count == 1)
        #expect(conflicts.first?.field == "phone")
        #expect(Set(conflicts.first?.values.map(\.value) ?? []) == [.text("13900139000"), .text("13600136000")])
        #expect(Set(conflicts.first?.values.map(\.user) ?? []) == ["张主任", "赵磊"])
        #expect(try server.row("person", made.person)?["phone"] == .text("13900139000"), "the resolution is newer: shown")

        let queue = try server.reviewQueue()
        #expect(queue.count == 1)
        let open = try #require(queue.first)
        #expect(open.id == stale.id && open.kind == .conflict && open.field == "phone")
        #expect(Set(open.values.map(\.value)) == [.text("13900139000"), .text("13600136000")])

        // The audit names only the values that were judged.
        let old = try replaced(try auditRecords(resolution, in: server).first?["replaced"])
        #expect(Set(old.compactMap { $0["value"] }) == ["13900139000", "13700137000"])
        try expectAuditClean(server, count: 1)
    }

    // MARK: 3. Corrected and newest

    @Test func aCorrectedValueAndTheNewestValueSettleTheirConflicts() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        let first = try phoneConflict(world, server: server, phoneLi: phoneLi, phoneWang: phoneWang, name: "陈静")
        let second = try phoneConflict(world, server: server, phoneLi: phoneLi, phoneWang: phoneWang, name: "周敏",
                                       original: "13500135000", li: "13511112222", wang: "13522223333")
        // 李明 changes the second person's number once more, after 王芳.
        let again = try phoneLi.write(as: world.li) { tx in try tx.update("person", second.person, ["phone": .text("13533334444")]) }
        world.clock.advance(1_000)
        // 李明's first edit reached the server when his phone synced for the second person.
        try world.merge(first.fromWang + second.fromLi + second.fromWang + again, into: server)

        let queue = try server.reviewQueue()
        #expect(queue.count == 2)
        let toCorrect = try #require(queue.first { $0.row == first.person.hex })
        let toNewest = try #require(queue.first { $0.row == second.person.hex })
        #expect(Set(toNewest.values.map(\.value)) == [.text("13533334444"), .text("13522223333")])
        let newest = try #require(toNewest.values.max { $0.hlc < $1.hlc })
        #expect(newest.value == .text("13533334444") && newest.hlc == again[0].header.hlc.rawValue)

        // Wrong actions for a conflict are refused before anything is written.
        #expect(thrown { try server.resolve([(toCorrect, .choose(2))], note: "x", as: world.staff) }?.code == .invalidInput)
        #expect(thrown { try server.resolve([(toCorrect, .dismiss)], note: "x", as: world.staff) }?.code == .invalidInput)
        #expect(try resolutionCount(server) == 0)

        let resolution = try server.resolve([(toCorrect, .correct(.text("021-66668888"))), (toNewest, .newest)],
                                            note: "办公电话为准；另一条取最新", as: world.staff)
        #expect(resolution.count == 1, "both in grid G1: one change set")
        #expect(try server.row("person", first.person)?["phone"] == .text("021-66668888"))
        #expect(try server.row("person", second.person)?["phone"] == .text("13533334444"))
        #expect(try server.reviewQueue().isEmpty)
        #expect(try server.conflicts().isEmpty)

        let audit = try auditRecords(resolution, in: server)
        #expect(audit.count == 2)
        let corrected = try #require(audit.first { $0["subject_row"] == .text(first.person.hex) })
        #expect(corrected["decision"] == .text("corrected") && corrected["value"] == .text("021-66668888"))
        #expect(Set(try replaced(corrected["replaced"]).compactMap { $0["value"] }) == ["13900139000", "13700137000"])
        let newestRecord = try #require(audit.first { $0["subject_row"] == .text(second.person.hex) })
        #expect(newestRecord["decision"] == .text("newest_wins") && newestRecord["value"] == .text("13533334444"))
        try expectAuditClean(server, count: 2)

        // A corrected value must still pass the field's checks.
        let third = try phoneConflict(world, server: server, phoneLi: phoneLi, phoneWang: phoneWang, name: "吴昊",
                                      original: "13400134000", li: "13411112222", wang: "13422223333")
        try world.merge(third.fromLi + third.fromWang, into: server)
        let item = try #require(try server.reviewQueue().first)
        #expect(thrown { try server.resolve([(item, .correct(.text("12345")))], note: "x", as: world.staff) }?.code == .invalidInput)
        #expect(try server.reviewQueue().map(\.id) == [item.id])
    }

    // MARK: 4. Delete versus edit

    @Test func keepingAnEditThatRacedADeleteRestoresTheRow() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        var person = RowID.random()
        let created = try phoneLi.write(as: world.li) { tx in
            person = try tx.create("person", ReviewWorld.person("G1", "陈静", ["phone": .text("13800138000"), "id_number": .text(Self.idA)]))
        }
        try world.merge(created, into: server)
        try world.merge(created, into: phoneWang, policy: .replica)
        world.clock.advance(1_000)
        let deletion = try phoneLi.write(as: world.li) { tx in try tx.delete("person", person) }
        world.clock.advance(1_000)
        let edit = try phoneWang.write(as: world.wang) { tx in try tx.update("person", person, ["phone": .text("13700137000")]) }
        world.clock.advance(1_000)
        try world.merge(deletion + edit, into: server)
        #expect(try server.row("person", person)?["_deleted"] == .boolean(true))

        let queue = try server.reviewQueue()
        #expect(queue.count == 1)
        let item = try #require(queue.first)
        #expect(item.kind == .deleteVersusEdit)
        #expect(item.table == "person" && item.row == person.hex && item.field == "phone" && item.grid == "G1")
        #expect(Set(item.values.map(\.value)) == [.null, .text("13700137000")])
        #expect(item.values.first { $0.value.isNull }?.user == "李明")
        #expect(!item.deletion.isEmpty)
        #expect(item.deletion.map(\.value) == [.boolean(true)])
        #expect(item.deletion.first?.user == "李明" && item.deletion.first?.dot.device == world.li.device.hex)
        #expect(try server.conflicts().map(\.kind) == [.deleteVersusEdit])
        #expect(try server.reviewQueue(filter: ReviewFilter(kind: .deleteVersusEdit)).count == 1)
        #expect(try server.reviewQueue(filter: ReviewFilter(kind: .conflict)).isEmpty)

        let index = try #require(item.values.firstIndex { !$0.value.isNull })
        let resolution = try server.resolve([(item, .choose(index))], note: "此人仍在本网格居住，误删", as: world.staff)
        let row = try #require(try server.row("person", person))
        #expect(row["_deleted"] == .boolean(false))
        #expect(row["phone"] == .text("13700137000"))
        #expect(try server.reviewItem(item.id) == nil)
        #expect(try server.reviewQueue().isEmpty)
        #expect(try server.conflicts().isEmpty)
        #expect(try auditRecords(resolution, in: server).first?["decision"] == .text("chosen"))
        try expectAuditClean(server, count: 1)

        // 李明's phone, which deleted the row, gets it back the same way.
        try world.merge(edit + resolution, into: phoneLi, policy: .replica)
        #expect(try phoneLi.row("person", person)?["_deleted"] == .boolean(false))
        #expect(try phoneLi.reviewQueue().isEmpty)

        // Keeping the deletion instead leaves the row deleted and the item gone.
        var other = RowID.random()
        let second = try phoneLi.write(as: world.li) { tx in
            other = try tx.create("person", ReviewWorld.person("G1", "周敏", ["phone": .text("13500135000")]))
        }
        try world.merge(second, into: server)
        try world.sync(phoneLi, to: phoneWang)
        world.clock.advance(1_000)
        let secondDeletion = try phoneLi.write(as: world.li) { tx in try tx.delete("person", other) }
        let secondEdit = try phoneWang.write(as: world.wang) { tx in try tx.update("person", other, ["phone": .text("13522223333")]) }
        world.clock.advance(1_000)
        try world.merge(secondDeletion + secondEdit, into: server)
        let raced = try #require(try server.reviewQueue().first)
        #expect(raced.kind == .deleteVersusEdit && raced.row == other.hex)
        let keepDeletion = try #require(raced.values.firstIndex { $0.value.isNull })
        try server.resolve([(raced, .choose(keepDeletion))], note: "周敏已迁走，删除无误", as: world.staff)
        #expect(try server.row("person", other)?["_deleted"] == .boolean(true))
        #expect(try server.row("person", other)?["phone"] == .null)
        #expect(try server.reviewQueue().isEmpty)
        #expect(try server.conflicts().isEmpty)
        try expectAuditClean(server, count: 2)
    }

    // MARK: 5. Invariants

    @Test func aDuplicateCitizenIDInOneGridIsFoundAfterTheMergeAndClearedByAnEdit() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        var first = RowID.random(), second = RowID.random()
        let fromLi = try phoneLi.write(as: world.li) { tx in
            first = try tx.create("person", ReviewWorld.person("G1", "陈静", ["id_number": .text(Self.idA)]))
        }
        let fromWang = try phoneWang.write(as: world.wang) { tx in
            second = try tx.create("person", ReviewWorld.person("G1", "陈晶", ["id_number": .text(Self.idA)]))
        }
        world.clock.advance(1_000)
        #expect(try phoneLi.reviewQueue().isEmpty && phoneWang.reviewQueue().isEmpty, "each phone alone is in order")
        try world.merge(fromLi + fromWang, into: server)

        let queue = try server.reviewQueue()
        #expect(queue.count == 1)
        let item = try #require(queue.first)
        #expect(item.kind == .invariant && item.invariant == "duplicate_citizen_id")
        #expect(item.explanation == Invariant.community[0].explanation)
        #expect(item.table == "person" && item.field == "id_number" && item.grid == "G1")
        #expect(Set(item.records.map(\.row)) == [first.hex, second.hex])
        #expect(item.records.allSatisfy { $0.shown("id_number") == .text(Self.idA) })
        #expect(Set(item.records.map { $0.shown("name") }) == [.text("陈静"), .text("陈晶")])
        #expect(try server.reviewQueue(filter: ReviewFilter(kind: .invariant)).count == 1)
        #expect(try server.reviewQueue(invariants: []).isEmpty, "only the invariants asked about are checked")

        let resolution = try server.resolve([(item, .edit(table: "person", row: second.hex, field: "id_number", value: .text(Self.idB)))],
                                            note: "陈晶的身份证号录错，已核对证件", as: world.staff)
        #expect(try server.reviewQueue().isEmpty)
        #expect(try server.reviewItem(item.id) == nil)
        #expect(try server.row("person", second)?["id_number"] == .text(Self.idB))
        #expect(try server.row("person", first)?["id_number"] == .text(Self.idA))
        let record = try #require(try auditRecords(resolution, in: server).first)
        #expect(record["decision"] == .text("corrected") && record["kind"] == .text("invariant"))
        #expect(record["subject_row"] == .text(second.hex) && record["subject_field"] == .text("id_number"))
        #expect(try replaced(record["replaced"]).compactMap { $0["value"] } == [Self.idA])
        try expectAuditClean(server, count: 1)

        // An edit of a record the item does not involve is refused.
        #expect(thrown {
            try server.resolve([(item, .edit(table: "person", row: RowID.random().hex, field: "id_number", value: .text(Self.idC)))],
                               note: "x", as: world.staff)
        }?.code == .invalidInput)
    }

    /// An older device stored a lowercase check character; a newer one the
    /// upper case the form stores now. They are one number.
    @Test func aCitizenIDWithALowercaseXIsTheSameNumberAsWithAnUppercaseOne() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        var first = RowID.random(), second = RowID.random()
        let fromLi = try phoneLi.write(as: world.li) { tx in
            first = try tx.create("person", ReviewWorld.person("G1", "陈静", ["id_number": .text("11010519491231002x")]))
        }
        let fromWang = try phoneWang.write(as: world.wang) { tx in
            second = try tx.create("person", ReviewWorld.person("G1", "陈晶", ["id_number": .text("11010519491231002X")]))
        }
        try world.merge(fromLi + fromWang, into: server)
        let queue = try server.reviewQueue()
        let item = try #require(queue.first, "the two spellings of one number were not found")
        #expect(queue.count == 1 && item.invariant == "duplicate_citizen_id")
        #expect(Set(item.records.map(\.row)) == [first.hex, second.hex])
    }

    /// The device refuses a birth date in the future before signing; a
    /// device whose pack lacks the rule signs it, and the gatekeeper
    /// refuses and keeps it, judged by the change set's own clock.
    @Test func aBirthDateInTheFutureIsRefusedOnTheDeviceAndByTheGatekeeper() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica()
        let future = ReviewWorld.person("G1", "陈静", ["birth_date": .text("2099-01-01")])
        do {
            try phoneLi.write(as: world.li) { tx in _ = try tx.create("person", future) }
            Issue.record("the device took a birth date in 2099")
        } catch let error as LinliError {
            #expect(error.code == .invalidInput && error.message.contains("future"), "\(error.message)")
        }
        var older = world.schema
        older.tables = older.tables.map { table in
            var table = table
            table.rules.removeAll { $0 == .notInFuture(field: "birth_date") }
            return table
        }
        let clock = world.clock
        let oldPhone = try ReplicaStore(path: nil, schema: older, authority: world.root.publicKey, clock: { clock.now })
        _ = try oldPhone.apply(world.authorityStore.changeSets(scopes: [.system]).map(\.envelope))
        let signed = try oldPhone.write(as: world.li) { tx in _ = try tx.create("person", future) }
        let outcomes = try server.apply(signed, policy: .gatekeeper)
        let error = try #require(outcomes.first?.error, "\(outcomes)")
        #expect(error.code == .schemaViolation && error.message.contains("2099-01-01"), "\(error.message)")
        #expect(try server.quarantined().contains { $0.hash == signed[0].hash }, "the refused change set is kept")
        // Today, by the change set's clock, is no future.
        let today = CalendarDay.date(of: world.clock.now, offsetHours: 8)
        let made = try oldPhone.write(as: world.li) { tx in _ = try tx.create("person", ReviewWorld.person("G1", "陈晶", ["birth_date": .text(today)])) }
        #expect(try server.apply(made, policy: .gatekeeper).allSatisfy { $0.status == .applied })
    }

    /// 李明 puts a resident in a house while 王芳, offline, deletes the house:
    /// each phone alone is in order, and the server shows the dangling
    /// reference until the resident is moved.
    @Test func aReferenceToARecordDeletedMeanwhileIsAReviewItemUntilMoved() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        var house = RowID.random(), resident = RowID.random()
        let made = try phoneLi.write(as: world.li) { tx in
            house = try tx.create("house", ["grid": .text("G1"), "address": .text("幸福路 8 号 2 单元 301")])
        }
        try world.merge(made, into: server)
        try world.merge(made, into: phoneWang, policy: .replica)
        world.clock.advance(1_000)
        let added = try phoneLi.write(as: world.li) { tx in
            resident = try tx.create("person", ReviewWorld.person("G1", "陈静", ["house": .bytes(house.data)]))
        }
        let deleted = try phoneWang.write(as: world.wang) { tx in try tx.delete("house", house) }
        #expect(try phoneLi.reviewQueue().isEmpty && phoneWang.reviewQueue().isEmpty)
        try world.merge(added + deleted, into: server)
        let queue = try server.reviewQueue()
        let item = try #require(queue.first { $0.invariant == "dangling_reference" }, "\(queue.map(\.summary))")
        #expect(queue.count == 1 && item.table == "person" && item.field == "house" && item.row == resident.hex)
        #expect(Set(item.records.map(\.row)) == [resident.hex, house.hex] && item.summary.contains("deleted"), "\(item.summary)")
        // The resident moves to another house: the item is gone.
        try world.sync(server, to: phoneLi)
        let moved = try phoneLi.write(as: world.li) { tx in
            let other = try tx.create("house", ["grid": .text("G1"), "address": .text("幸福路 8 号 2 单元 302")])
            try tx.update("person", resident, ["house": .bytes(other.data)])
        }
        try world.merge(moved, into: server)
        #expect(try server.reviewQueue().isEmpty)
    }

    /// Two phones each log hours for one volunteer on one day, within the
    /// per-record bound; together they pass 24 hours.
    @Test func moreThanADaysServiceHoursForOneVolunteerIsAReviewItem() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        var volunteer = RowID.random()
        let made = try phoneLi.write(as: world.li) { tx in
            volunteer = try tx.create("volunteer", ["grid": .text("G1"), "name": .text("陈静")])
        }
        for store in [server, phoneWang] { try world.merge(made, into: store, policy: store === server ? .gatekeeper : .replica) }
        func hours(_ store: ReplicaStore, _ who: DeviceIdentity, _ amount: Double, day: String = "2026-11-30") throws -> [SignedChangeSet] {
            try store.write(as: who) { tx in
                _ = try tx.create("service_record", ["grid": .text("G1"), "volunteer": .bytes(volunteer.data), "date": .text(day), "hours": .real(amount)])
            }
        }
        try world.merge(try hours(phoneLi, world.li, 12) + hours(phoneLi, world.li, 8, day: "2026-11-29") + hours(phoneWang, world.wang, 10), into: server)
        #expect(try server.reviewQueue().isEmpty, "22 hours on one day and 8 on another are in order")
        try world.merge(try hours(phoneWang, world.wang, 3), into: server)
        let over = try server.reviewQueue()
        let found = try #require(over.first { $0.invariant == "service_hours_over_a_day" }, "\(over.map(\.summary))")
        #expect(over.count == 1 && found.records.count == 3 && found.summary.contains("25"), "\(found.summary)")
    }

    @Test func gridsOfOneCommunityShareTheCitizenIDCheckAndGridsOfTwoDoNot() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        var inG1 = RowID.random(), inG2 = RowID.random()
        let fromLi = try phoneLi.write(as: world.li) { tx in
            inG1 = try tx.create("person", ReviewWorld.person("G1", "陈静", ["id_number": .text(Self.idA)]))
            try tx.create("person", ReviewWorld.person("G1", "刘洋", ["id_number": .text(Self.idC)]))
        }
        let fromWang = try phoneWang.write(as: world.wang) { tx in
            inG2 = try tx.create("person", ReviewWorld.person("G2", "陈晶", ["id_number": .text(Self.idA)]))
            try tx.create("person", ReviewWorld.person("G3", "刘阳", ["id_number": .text(Self.idC)]))
        }
        world.clock.advance(1_000)
        try world.merge(fromLi + fromWang, into: server)
        #expect(try server.reviewQueue().isEmpty, "unmapped grids are each their own community")

        // The area register: G1 and G2 belong to 幸福社区, G3 to 和平社区.
        try server.write(as: world.staff) { tx in
            let happiness = try tx.create("area", ["level": .text("社区"), "code": .text("C1"), "name": .text("幸福社区")])
            let peace = try tx.create("area", ["level": .text("社区"), "code": .text("C2"), "name": .text("和平社区")])
            for (grid, community) in [("G1", happiness), ("G2", happiness), ("G3", peace)] {
                try tx.create("area", ["level": .text("网格"), "code": .text(grid), "name": .text("\(grid)网格"), "parent": .bytes(community.data)])
            }
        }
        let queue = try server.reviewQueue()
        #expect(queue.count == 1, "\(queue.map(\.summary))")
        let item = try #require(queue.first)
        #expect(item.invariant == "duplicate_citizen_id")
        #expect(Set(item.records.map(\.row)) == [inG1.hex, inG2.hex])
        #expect(Set(item.records.map(\.scope)) == ["grid:G1", "grid:G2"])

        try server.resolve([(item, .edit(table: "person", row: inG2.hex, field: "id_number", value: .text(Self.idD)))],
                           note: "陈晶另有证件号", as: world.staff)
        #expect(try server.reviewQueue().isEmpty)
        #expect(try server.row("person", inG2)?["id_number"] == .text(Self.idD))
    }

    /// A house, and a lease of it, recorded by 李明 and known everywhere.
    func lease(_ world: ReviewWorld, _ stores: [ReplicaStore], phoneLi: ReplicaStore, server: ReplicaStore) throws -> (house: RowID, rental: RowID) {
        var house = RowID.random(), rental = RowID.random()
        let made = try phoneLi.write(as: world.li) { tx in
            house = try tx.create("house", ["grid": .text("G1"), "address": .text("幸福路 8 号 2 单元 301"), "use": .text("出租")])
            rental = try tx.create("rental", [
                "grid": .text("G1"), "house": .bytes(house.data), "landlord": .text("周敏"), "lease_start": .text("2024-01-01"),
                "lease_end": .text("2024-12-31"), "status": .text("已登记"),
            ])
        }
        try world.merge(made, into: server)
        for store in stores { try world.merge(made, into: store, policy: .replica) }
        world.clock.advance(1_000)
        return (house, rental)
    }

    @Test func aTenantAddedToALeaseTerminatedMeanwhileIsFoundAndClearedByAMoveOutDate() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        let (_, rental) = try lease(world, [phoneWang], phoneLi: phoneLi, server: server)
        let terminated = try phoneLi.write(as: world.li) { tx in try tx.update("rental", rental, ["status": .text("已终止")]) }
        world.clock.advance(1_000)
        var tenant = RowID.random()
        let added = try phoneWang.write(as: world.wang) { tx in
            tenant = try tx.create("tenant", ["grid": .text("G1"), "rental": .bytes(rental.data), "name": .text("孙悦"), "moved_in": .text("2024-03-01")])
        }
        world.clock.advance(1_000)
        #expect(try phoneLi.reviewQueue().isEmpty && phoneWang.reviewQueue().isEmpty)
        try world.merge(terminated + added, into: server)

        let queue = try server.reviewQueue()
        #expect(queue.count == 1)
        let item = try #require(queue.first)
        #expect(item.kind == .invariant && item.invariant == "tenant_on_terminated_lease")
        #expect(item.table == "rental" && item.row == rental.hex && item.field == "status" && item.grid == "G1")
        #expect(item.records.map(\.table) == ["rental", "tenant"])
        #expect(item.records.map(\.row) == [rental.hex, tenant.hex])
        #expect(item.records.first?.shown("status") == .text("已终止"))
        #expect(item.records.last?.shown("name") == .text("孙悦"))

        try server.resolve([(item, .edit(table: "tenant", row: tenant.hex, field: "moved_out", value: .text("2024-06-30")))],
                           note: "租客已于六月底搬离", as: world.staff)
        #expect(try server.reviewQueue().isEmpty)
        #expect(try server.row("tenant", tenant)?["moved_out"] == .text("2024-06-30"))
        #expect(try server.row("rental", rental)?["status"] == .text("已终止"))
        try expectAuditClean(server, count: 1)
    }

    @Test func aResidentOfAHouseMarkedVacantMeanwhileIsFoundAndClearedByAnEditOfTheHouse() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        let (house, _) = try lease(world, [phoneWang], phoneLi: phoneLi, server: server)
        let vacant = try phoneLi.write(as: world.li) { tx in try tx.update("house", house, ["use": .text("空置")]) }
        world.clock.advance(1_000)
        var resident = RowID.random()
        let movedIn = try phoneWang.write(as: world.wang) { tx in
            resident = try tx.create("person", ReviewWorld.person("G1", "马丽", ["house": .bytes(house.data), "moved_in": .text("2024-05-01")]))
        }
        world.clock.advance(1_000)
        #expect(try phoneLi.reviewQueue().isEmpty && phoneWang.reviewQueue().isEmpty)
        try world.merge(vacant + movedIn, into: server)

        let queue = try server.reviewQueue()
        #expect(queue.count == 1)
        let item = try #require(queue.first)
        #expect(item.kind == .invariant && item.invariant == "vacant_house_with_residents")
        #expect(item.table == "house" && item.row == house.hex && item.field == "use")
        #expect(item.records.map(\.row) == [house.hex, resident.hex])
        #expect(item.records.first?.shown("use") == .text("空置"))
        #expect(item.detectedAt == movedIn[0].header.hlc.milliseconds)

        try server.resolve([(item, .edit(table: "house", row: house.hex, field: "use", value: .text("出租")))],
                           note: "房屋仍在出租，马丽为租住人员", as: world.staff)
        #expect(try server.reviewQueue().isEmpty)
        #expect(try server.row("house", house)?["use"] == .text("出租"))
    }

    @Test func aLeaseThatEndsBeforeItStartsAfterTheMergeIsFoundAndClearedByANewEndDate() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica(), phoneZhao = try world.replica()
        let (_, rental) = try lease(world, [phoneWang, phoneZhao], phoneLi: phoneLi, server: server)
        // 王芳 and 赵磊 both move the start; each date agrees with the end.
        let fromWang = try phoneWang.write(as: world.wang) { tx in try tx.update("rental", rental, ["lease_start": .text("2024-02-01")]) }
        world.clock.advance(1_000)
        let fromZhao = try phoneZhao.write(as: world.zhao) { tx in try tx.update("rental", rental, ["lease_start": .text("2024-07-01")]) }
        world.clock.advance(1_000)
        try world.merge(fromWang + fromZhao, into: server)
        // 李明 moves the end before 赵磊's start, which he has not seen; the
        // gatekeeper does not compare a start in conflict.
        let fromLi = try phoneLi.write(as: world.li) { tx in try tx.update("rental", rental, ["lease_end": .text("2024-05-31")]) }
        world.clock.advance(1_000)
        try world.merge(fromLi, into: server)
        #expect(try server.row("rental", rental)?["lease_start"] == .text("2024-07-01"))
        #expect(try server.row("rental", rental)?["lease_end"] == .text("2024-05-31"))

        let queue = try server.reviewQueue()
        #expect(queue.count == 2)
        let conflict = try #require(queue.first { $0.kind == .conflict })
        #expect(conflict.field == "lease_start")
        let item = try #require(queue.first { $0.kind == .invariant })
        #expect(item.invariant == "lease_ends_before_start")
        #expect(item.table == "rental" && item.row == rental.hex && item.field == "lease_end")
        #expect(item.records.count == 1)
        #expect(item.records.first?.shown("lease_start") == .text("2024-07-01"))
        #expect(item.records.first?.shown("lease_end") == .text("2024-05-31"))
        #expect(item.records.first?.fields["lease_start"]?.count == 2)

        try server.resolve([(item, .edit(table: "rental", row: rental.hex, field: "lease_end", value: .text("2025-06-30")))],
                           note: "合同到期日为 2025-06-30", as: world.staff)
        let after = try server.reviewQueue()
        #expect(after.map(\.id) == [conflict.id], "the start is still in conflict; the order of the dates is settled")
        #expect(try server.row("rental", rental)?["lease_end"] == .text("2025-06-30"))
    }

    // MARK: 6. Refused change sets

    @Test func aRefusedChangeSetIsDismissedOrResubmittedCorrected() throws {
        let world = try ReviewWorld()
        let server = try world.replica()
        // 赵磊 covers G1 only; a person recorded in G2 is refused.
        let outside = RowID.random()
        let intoG2 = try Fixtures.signed(world.zhao, seq: 1, prev: Data(), hlc: world.clock.now << 16, scope: .grid("G2"), rows: [
            RowChange(table: "person", row: outside, writes: [
                FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text("G2")),
                FieldWrite(field: "name", value: .text("郑爽")), FieldWrite(field: "residence_type", value: .text("流动人口")),
            ]),
        ])
        #expect(try server.apply([intoG2], policy: .gatekeeper).first?.error?.code == .outOfScope)
        world.clock.advance(1_000)
        // Offered again: refused again, still one item.
        #expect(try server.apply([intoG2], policy: .gatekeeper).first?.error?.code == .outOfScope)

        let queue = try server.reviewQueue()
        #expect(queue.count == 1)
        let item = try #require(queue.first)
        #expect(item.kind == .refused && item.scope == "grid:G2" && item.grid == "G2")
        // A unique start of its id names it; three characters are too few to mean anything.
        #expect(try server.reviewItem(String(item.id.prefix(6)))?.id == item.id)
        #expect(try server.reviewItem(String(item.id.prefix(3))) == nil)
        #expect(item.table == "person" && item.row == outside.hex)
        let refusal = try #require(item.refusal)
        #expect(refusal.code == "out_of_scope" && refusal.message.contains("G2"))
        #expect(refusal.user == "赵磊" && refusal.device == world.zhao.device.hex && refusal.seq == 1)
        #expect(refusal.hash == Hex.encode(intoG2.hash))
        #expect(refusal.writes.map(\.field) == ["_deleted", "grid", "name", "residence_type"])
        #expect(refusal.writes.first { $0.field == "name" }?.value == .text("郑爽"))

        let dismissal = try server.resolve([(item, .dismiss)], note: "网格划错，已请赵磊转交二网格", as: world.staff)
        #expect(try server.reviewQueue().isEmpty)
        #expect(try server.quarantined().count == 1, "the refused bytes stay in quarantine")
        #expect(try server.row("person", outside) == nil, "nothing of it was written")
        let dismissed = try #require(try auditRecords(dismissal, in: server).first)
        #expect(dismissed["decision"] == .text("dismissed") && dismissed["kind"] == .text("refused"))
        #expect(dismissed["refused_hash"] == .text(refusal.hash))
        #expect(dismissal.first?.header.scope == .grid("G2"))

        // A move-out date before the move-in date breaks the person rule.
        let person = RowID.random()
        let backwards = try Fixtures.signed(world.zhao, seq: 2, prev: intoG2.hash, hlc: world.clock.now << 16, scope: .grid("G1"), rows: [
            RowChange(table: "person", row: person, writes: [
                FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text("G1")),
                FieldWrite(field: "moved_in", value: .text("2024-05-01")), FieldWrite(field: "moved_out", value: .text("2024-04-01")),
                FieldWrite(field: "name", value: .text("钱进")), FieldWrite(field: "residence_type", value: .text("流动人口")),
            ]),
        ])
        #expect(try server.apply([backwards], policy: .gatekeeper).first?.error?.code == .schemaViolation)
        world.clock.advance(1_000)
        let second = try #require(try server.reviewQueue().first)
        #expect(try server.reviewQueue().count == 1)
        #expect(second.kind == .refused && second.refusal?.code == "schema_violation")
        #expect(second.refusal?.message.contains("moved_out") == true)
        #expect(second.refusal?.user == "赵磊" && second.refusal?.seq == 2)

        #expect(thrown { try server.resolve([(second, .resubmit(["phone": .text("13800138000")]))], note: "x", as: world.staff) }?.code
            == .invalidInput, "a field the refused change set does not write")
        let resubmitted = try server.resolve([(second, .resubmit(["moved_out": .text("2024-06-01")]))],
                                             note: "迁出日期核实为 6 月 1 日", as: world.staff)
        let row = try #require(try server.row("person", person))
        #expect(row["_deleted"] == .boolean(false))
        #expect(row["name"] == .text("钱进") && row["moved_in"] == .text("2024-05-01"))
        #expect(row["moved_out"] == .text("2024-06-01"))
        #expect(try server.reviewQueue().isEmpty)
        #expect(try server.reviewItem(second.id) == nil)
        let record = try #require(try auditRecords(resubmitted, in: server).first)
        #expect(record["decision"] == .text("resubmitted") && record["refused_hash"] == .text(Hex.encode(backwards.hash)))
        #expect(record["value"] == .text("moved_out=2024-06-01"))
        #expect(try resolutionCount(server) == 2)
        try expectAuditClean(server, count: 2)

        // Another replica takes the resolutions as it takes any change set.
        let phone = try world.replica()
        try world.merge(dismissal + resubmitted, into: phone)
        #expect(try phone.row("person", person)?["moved_out"] == .text("2024-06-01"))
    }

    /// A refused change set is evidence, not an order: resubmitting it must
    /// not carry out a deletion, nor replace values staff were never shown,
    /// such as a value its device named before that value even arrived.
    @Test func resubmitCarriesOutNoRefusedDeletionAndReplacesOnlyValuesHeldNow() throws {
        let world = try ReviewWorld()
        let server = try world.replica()
        let person = RowID.random()
        let recorded = try Fixtures.signed(world.li, seq: 1, prev: Data(), hlc: world.clock.now << 16, scope: .grid("G2"), rows: [
            RowChange(table: "person", row: person, writes: [
                FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "grid", value: .text("G2")),
                FieldWrite(field: "name", value: .text("孙立")), FieldWrite(field: "residence_type", value: .text("流动人口")),
            ]),
        ])
        try world.merge([recorded], into: server)
        world.clock.advance(1_000)
        let deletedDot = Dot(device: world.li.device, seq: 1, index: 0), nameDot = Dot(device: world.li.device, seq: 1, index: 2)

        // 赵磊 covers G1 only: his deletion of a G2 person is refused.
        let deletion = try Fixtures.signed(world.zhao, seq: 1, prev: Data(), hlc: world.clock.now << 16, scope: .grid("G2"), rows: [
            RowChange(table: "person", row: person, writes: [
                FieldWrite(field: "_deleted", value: .boolean(true), replaces: [deletedDot]),
                FieldWrite(field: "name", value: .null, replaces: [nameDot]),
            ]),
        ])
        #expect(try server.apply([deletion], policy: .gatekeeper).first?.error?.code == .outOfScope)
        world.clock.advance(1_000)
        let refusedDeletion = try #require(try server.reviewQueue().first)
        #expect(refusedDeletion.kind == .refused)
        let before = try server.counts().changeSets
        let notCarriedOut = thrown { _ = try server.resolve([(refusedDeletion, .resubmit([:]))], note: "照办", as: world.staff) }
        #expect(notCarriedOut?.code == .notPermitted)
        #expect(notCarriedOut?.message.contains("deletion") == true && notCarriedOut?.hint?.contains("dismiss") == true)
        #expect(try server.counts().changeSets == before, "nothing was signed")
        #expect(try server.row("person", person)?["name"] == .text("孙立"), "the person is still there")
        #expect(try server.reviewQueue().map(\.id) == [refusedDeletion.id], "the item waits for a dismissal")
        _ = try server.resolve([(refusedDeletion, .dismiss)], note: "不属于赵磊的网格", as: world.staff)

        // His correction of the name is refused too; it names as replaced
        // the value held now and one of 王芳's that has not arrived yet.
        let unseen = Dot(device: world.wang.device, seq: 1, index: 0)
        let rename = try Fixtures.signed(world.zhao, seq: 2, prev: deletion.hash, hlc: world.clock.now << 16, scope: .grid("G2"), rows: [
            RowChange(table: "person", row: person, writes: [FieldWrite(field: "name", value: .text("孙丽"), replaces: [nameDot, unseen])]),
        ])
        #expect(try server.apply([rename], policy: .gatekeeper).first?.error?.code == .outOfScope)
        world.clock.advance(1_000)
        let refusedRename = try #require(try server.reviewQueue().first)
        let resubmitted = try server.resolve([(refusedRename, .resubmit([:]))], note: "核实为孙丽", as: world.staff)
        #expect(try server.row("person", person)?["name"] == .text("孙丽"))
        let replaced = try #require(resubmitted.first?.changeSet.rows.first { $0.table == "person" }?.writes.first { $0.field == "name" })
        #expect(replaced.replaces == [nameDot], "only the value the desk showed is replaced")
        #expect(try server.conflicts().isEmpty)

        // 王芳's value arrives after the resubmission: it is shown, in
        // conflict with what staff wrote, not replaced before it was seen.
        world.clock.advance(1_000)
        let late = try Fixtures.signed(world.wang, seq: 1, prev: Data(), hlc: world.clock.now << 16, scope: .grid("G2"), rows: [
            RowChange(table: "person", row: person, writes: [FieldWrite(field: "name", value: .text("孙力"), replaces: [nameDot])]),
        ])
        try world.merge([late], into: server)
        let conflict = try #require(try server.conflicts().first)
        #expect(conflict.row == person && conflict.field == "name")
        #expect(Set(conflict.values.map(\.value)) == [.text("孙丽"), .text("孙力")])
    }

    // MARK: 7. Staff only

    @Test func onlyStaffRecordResolutions() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        let made = try phoneConflict(world, server: server, phoneLi: phoneLi, phoneWang: phoneWang)
        try world.merge(made.fromWang, into: phoneLi, policy: .replica)
        let item = try #require(try phoneLi.reviewQueue().first)
        #expect(item.kind == .conflict)
        let before = try phoneLi.counts().changeSets

        // On his own phone, which holds his inspector certificate.
        let refused = thrown { try phoneLi.resolve([(item, .choose(0))], note: "我来定", as: world.li) }
        #expect(refused?.code == .notPermitted)
        #expect(try phoneLi.counts().changeSets == before, "nothing was signed")
        #expect(try phoneLi.conflicts().count == 1)
        #expect(try phoneLi.reviewQueue().map(\.id) == [item.id])
        #expect(try resolutionCount(phoneLi) == 0)

        // A resolution record written by hand into an inspector's change set.
        let head = try #require(try phoneLi.heads()[world.li.device])
        let forged = try Fixtures.signed(world.li, seq: head.seq + 1, prev: head.hash, hlc: world.clock.now << 16, scope: .grid("G1"), rows: [
            RowChange(table: ReviewSchema.resolution, row: RowID.random(), writes: [
                FieldWrite(field: "_deleted", value: .boolean(false)), FieldWrite(field: "decision", value: .text("chosen")),
                FieldWrite(field: "item", value: .text(item.id)), FieldWrite(field: "kind", value: .text("conflict")),
                FieldWrite(field: "note", value: .text("我来定")),
            ]),
        ])
        try world.merge(made.fromLi + made.fromWang, into: server)
        let outcome = try #require(try server.apply([forged], policy: .gatekeeper).first)
        #expect(outcome.error?.code == .notPermitted)
        #expect(try server.quarantined().map(\.envelope) == [forged.envelope])
        #expect(try resolutionCount(server) == 0)
        let refusedItem = try #require(try server.reviewQueue(filter: ReviewFilter(kind: .refused)).first)
        #expect(refusedItem.refusal?.code == "not_permitted" && refusedItem.refusal?.user == "李明")
        #expect(refusedItem.table == ReviewSchema.resolution)
        #expect(try server.reviewQueue(filter: ReviewFilter(kind: .conflict)).map(\.id) == [item.id], "the conflict is still open")

        // Staff may: the same item, on the server.
        try server.resolve([(item, .choose(0))], note: "按最新登记", as: world.staff)
        #expect(try server.reviewQueue(filter: ReviewFilter(kind: .conflict)).isEmpty)
    }

    // MARK: 8. Filters

    @Test func theQueueNarrowsByGridTableKindAndAge() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        // At the start: a person's phone and a house's address in G1.
        let early = try phoneConflict(world, server: server, phoneLi: phoneLi, phoneWang: phoneWang, grid: "G1")
        var house = RowID.random()
        let madeHouse = try phoneLi.write(as: world.li) { tx in
            house = try tx.create("house", ["grid": .text("G1"), "address": .text("幸福路 1 号"), "use": .text("自住")])
        }
        try world.sync(phoneLi, to: server, policy: .gatekeeper)
        try world.sync(phoneLi, to: phoneWang)
        world.clock.advance(1_000)
        let houseLi = try phoneLi.write(as: world.li) { tx in try tx.update("house", house, ["address": .text("幸福路 1 号 A 座")]) }
        let houseWang = try phoneWang.write(as: world.wang) { tx in try tx.update("house", house, ["address": .text("幸福路 1 号 B 座")]) }
        world.clock.advance(1_000)
        try world.merge(early.fromWang + houseLi + houseWang, into: server)

        // Two hours later: a person's phone in G2, and a refused change set into G2.
        world.clock.advance(2 * 3_600_000)
        let late = try phoneConflict(world, server: server, phoneLi: phoneLi, phoneWang: phoneWang, grid: "G2", name: "周敏",
                                     original: "13500135000", li: "13511112222", wang: "13522223333")
        try world.merge(late.fromLi + late.fromWang, into: server)
        let intoG2 = try Fixtures.signed(world.zhao, seq: 1, prev: Data(), hlc: world.clock.now << 16, scope: .grid("G2"), rows: [
            RowChange(table: "person", row: RowID.random(), writes: [
                FieldWrite(field: "grid", value: .text("G2")), FieldWrite(field: "name", value: .text("郑爽")),
            ]),
        ])
        #expect(try server.apply([intoG2], policy: .gatekeeper).first?.error?.code == .outOfScope)
        world.clock.advance(60_000)

        let all = try server.reviewQueue()
        #expect(all.count == 4)
        #expect(all.map(\.detectedAt) == all.map(\.detectedAt).sorted(), "oldest first")
        let earlyPhone = try #require(all.first { $0.row == early.person.hex })
        let houseItem = try #require(all.first { $0.table == "house" })
        let latePhone = try #require(all.first { $0.row == late.person.hex })
        let refused = try #require(all.first { $0.kind == .refused })
        func ids(_ filter: ReviewFilter) throws -> Set<String> { Set(try server.reviewQueue(filter: filter).map(\.id)) }

        #expect(try ids(ReviewFilter(grid: "G1")) == [earlyPhone.id, houseItem.id])
        #expect(try ids(ReviewFilter(grid: "G2")) == [latePhone.id, refused.id])
        #expect(try ids(ReviewFilter(grid: "G9")).isEmpty)
        #expect(try ids(ReviewFilter(table: "house")) == [houseItem.id])
        #expect(try ids(ReviewFilter(table: "person")) == [earlyPhone.id, latePhone.id, refused.id])
        #expect(try ids(ReviewFilter(kind: .refused)) == [refused.id])
        #expect(try ids(ReviewFilter(kind: .conflict)) == [earlyPhone.id, houseItem.id, latePhone.id])
        #expect(try ids(ReviewFilter(kind: .invariant)).isEmpty)
        #expect(try ids(ReviewFilter(field: "address")) == [houseItem.id])
        #expect(try ids(ReviewFilter(olderThanSeconds: 3_600)) == [earlyPhone.id, houseItem.id])
        #expect(try ids(ReviewFilter(olderThanSeconds: 30)) == [earlyPhone.id, houseItem.id, latePhone.id, refused.id])
        #expect(try ids(ReviewFilter(olderThanSeconds: 3 * 3_600)).isEmpty)
        #expect(try ids(ReviewFilter(grid: "G1", table: "person")) == [earlyPhone.id])
        #expect(try ids(ReviewFilter(grid: "G2", kind: .conflict, olderThanSeconds: 30)) == [latePhone.id])
        #expect(Set(try server.reviewQueue(scopes: [.grid("G2")]).map(\.id)) == [latePhone.id, refused.id])

        // Time passes: everything is over an hour old.
        world.clock.advance(3_600_000)
        #expect(try ids(ReviewFilter(olderThanSeconds: 3_600)) == [earlyPhone.id, houseItem.id, latePhone.id, refused.id])
        #expect(try ids(ReviewFilter(olderThanSeconds: 3 * 3_600)) == [earlyPhone.id, houseItem.id])
    }

    // MARK: 9. Notes

    @Test func aResolutionNeedsANote() throws {
        let world = try ReviewWorld()
        let server = try world.replica(), phoneLi = try world.replica(), phoneWang = try world.replica()
        let made = try phoneConflict(world, server: server, phoneLi: phoneLi, phoneWang: phoneWang)
        try world.merge(made.fromLi + made.fromWang, into: server)
        let item = try #require(try server.reviewQueue().first)
        let before = try server.counts().changeSets
        for note in ["", " ", "   ", " \n\t "] {
            #expect(thrown { try server.resolve([(item, .choose(0))], note: note, as: world.staff) }?.code == .invalidInput, "note \(note.debugDescription)")
        }
        #expect(try server.counts().changeSets == before)
        #expect(try server.reviewQueue().map(\.id) == [item.id])
        #expect(try resolutionCount(server) == 0)

        // The note is kept trimmed.
        let resolution = try server.resolve([(item, .choose(0))], note: "  已核实  ", as: world.staff)
        #expect(try auditRecords(resolution, in: server).first?["note"] == .text("已核实"))
        #expect(try server.reviewQueue().isEmpty)
    }
}
