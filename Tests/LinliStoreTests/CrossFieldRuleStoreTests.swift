import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore
import LinliTesting
import Testing

/// Cross-field rules on the device (before a change is made) and on the
/// gatekeeper (before a change set is accepted): a refused change set is
/// kept in quarantine with the reason, and its device's chain goes on.
@Suite struct CrossFieldRuleStoreTests {
    /// Born 1990-03-07, male.
    static let male1990 = "110101199003074514"
    /// Born 1949-12-31, female.
    static let female1949 = "11010519491231002X"
    /// Born 1985-06-15, male.
    static let male1985 = "44030619850615123X"

    /// The fixture schema with two tables that have rules.
    static let schema: Schema = {
        var schema = Fixtures.schema
        schema.tables.append(TableSchema("resident", label: "居民", scope: .gridField("grid"), fields: [
            FieldSchema("grid", .text, label: "网格", required: true),
            FieldSchema("name", .text, label: "姓名", personal: true),
            FieldSchema("id_number", .text, label: "公民身份号码", personal: true, format: .citizenID),
            FieldSchema("gender", .text, label: "性别", choices: ["男", "女"]),
            FieldSchema("birth_date", .date, label: "出生日期"),
            FieldSchema("moved_in", .date, label: "迁入日期"),
            FieldSchema("moved_out", .date, label: "迁出日期"),
        ], rules: [
            .citizenIDMatches(id: "id_number", birthDate: "birth_date", gender: "gender"),
            .dateOrder(start: "moved_in", end: "moved_out", strict: false),
        ]))
        schema.tables.append(TableSchema("lease", label: "租约", scope: .gridField("grid"), fields: [
            FieldSchema("grid", .text, label: "网格", required: true),
            FieldSchema("lease_start", .date, label: "租期开始"),
            FieldSchema("lease_end", .date, label: "租期结束"),
        ], rules: [.dateOrder(start: "lease_start", end: "lease_end", strict: true)]))
        return schema
    }()

    let li = Fixtures.identity(41, user: "李明")
    let wang = Fixtures.identity(42, user: "王芳")
    let zhao = Fixtures.identity(43, user: "赵磊")
    let now: UInt64 = 1_790_000_000_000

    func store(_ identities: [DeviceIdentity]) throws -> ReplicaStore {
        let now = now
        return try Fixtures.store(schema: Self.schema, knowing: identities, clock: { now + 60_000 })
    }

    static let resident: [String: Value] = [
        "grid": .text("G1"), "name": .text("陈静"), "id_number": .text(male1990), "birth_date": .text("1990-03-07"), "gender": .text("男"),
        "moved_in": .text("2020-05-01"),
    ]

    /// The error a local write throws, or nil if it went through.
    func refusal(_ store: ReplicaStore, _ body: (LocalTransaction) throws -> Void) -> LinliError? {
        do {
            try store.write(as: li, body)
            return nil
        } catch let error as LinliError {
            return error
        } catch {
            Issue.record("not a LinliError: \(error)")
            return nil
        }
    }

    // MARK: On the device

    @Test func theDeviceRefusesACreateThatBreaksARule() throws {
        let store = try store([li])
        let wrongBirth = refusal(store) { tx in try tx.create("resident", Self.resident.merging(["birth_date": .text("1991-03-07")]) { $1 }) }
        #expect(wrongBirth?.code == .invalidInput)
        #expect(wrongBirth?.message == "resident: 公民身份号码 (id_number) encodes birth date 1990-03-07, but 出生日期 (birth_date) is 1991-03-07")
        let wrongGender = refusal(store) { tx in try tx.create("resident", Self.resident.merging(["gender": .text("女")]) { $1 }) }
        #expect(wrongGender?.message == "resident: 公民身份号码 (id_number) encodes gender 男, but 性别 (gender) is 女")
        let movedOutFirst = refusal(store) { tx in try tx.create("resident", Self.resident.merging(["moved_out": .text("2020-04-30")]) { $1 }) }
        #expect(movedOutFirst?.message == "resident: 迁出日期 (moved_out) 2020-04-30 must not be before 迁入日期 (moved_in) 2020-05-01")
        let sameDay = refusal(store) { tx in
            try tx.create("lease", ["grid": .text("G1"), "lease_start": .text("2024-03-01"), "lease_end": .text("2024-03-01")])
        }
        #expect(sameDay?.code == .invalidInput && sameDay?.message.contains("must be after 租期开始 (lease_start) 2024-03-01") == true)
        #expect(try store.counts().changeSets == 0, "nothing refused was signed")

        // What agrees is taken; a moved-out date on the moved-in day is in order.
        #expect(refusal(store) { tx in
            try tx.create("resident", Self.resident.merging(["moved_out": .text("2020-05-01")]) { $1 })
            try tx.create("resident", ["grid": .text("G1"), "name": .text("周敏"), "id_number": .text(Self.female1949), "gender": .text("女")])
            try tx.create("lease", ["grid": .text("G1"), "lease_start": .text("2024-03-01"), "lease_end": .text("2025-02-28")])
        } == nil)
        #expect(try store.counts().changeSets == 1)
    }

    @Test func anUpdateIsCheckedAgainstTheStoredRow() throws {
        let store = try store([li])
        var id = RowID.random()
        try store.write(as: li) { tx in id = try tx.create("resident", Self.resident) }

        // Only the birth date changes, but the stored number encodes another.
        let birth = refusal(store) { tx in try tx.update("resident", id, ["birth_date": .text("1991-03-07")]) }
        #expect(birth?.code == .invalidInput)
        #expect(birth?.message == "resident: 公民身份号码 (id_number) encodes birth date 1990-03-07, but 出生日期 (birth_date) is 1991-03-07")
        #expect(refusal(store) { tx in try tx.update("resident", id, ["gender": .text("女")]) }?.message.contains("encodes gender 男") == true)
        // A new number alone disagrees with the stored birth date and gender.
        #expect(refusal(store) { tx in try tx.update("resident", id, ["id_number": .text(Self.female1949)]) }?.message
            == "resident: 公民身份号码 (id_number) encodes birth date 1949-12-31, but 出生日期 (birth_date) is 1990-03-07")
        #expect(refusal(store) { tx in try tx.update("resident", id, ["moved_out": .text("2019-12-31")]) }?.message.contains("must not be before") == true)
        #expect(try store.counts().changeSets == 1)

        // Consistent changes go through: all three together, a later date,
        // or a field no rule compares.
        #expect(refusal(store) { tx in
            try tx.update("resident", id, ["id_number": .text(Self.female1949), "birth_date": .text("1949-12-31"), "gender": .text("女")])
        } == nil)
        #expect(refusal(store) { tx in try tx.update("resident", id, ["moved_out": .text("2021-01-01")]) } == nil)
        #expect(refusal(store) { tx in try tx.update("resident", id, ["name": .text("陈晶")]) } == nil)
        let row = try #require(try store.row("resident", id))
        #expect(row["id_number"] == .text(Self.female1949) && row["birth_date"] == .text("1949-12-31") && row["moved_out"] == .text("2021-01-01"))
        #expect(try store.counts().changeSets == 4)

        // Cleared values are not compared: clearing the birth date and then
        // giving a new number is fine.
        #expect(refusal(store) { tx in
            try tx.update("resident", id, ["birth_date": .null])
            try tx.update("resident", id, ["id_number": .text(Self.male1985), "gender": .text("男")])
        } == nil)
    }

    @Test func valuesWrittenEarlierInTheSameTransactionCount() throws {
        let store = try store([li])
        // A row made in this transaction is not stored yet.
        let fresh = refusal(store) { tx in
            let id = try tx.create("resident", Self.resident)
            try tx.update("resident", id, ["gender": .text("女")])
        }
        #expect(fresh?.message == "resident: 公民身份号码 (id_number) encodes gender 男, but 性别 (gender) is 女")
        #expect(try store.counts().changeSets == 0, "the whole transaction is dropped")

        var id = RowID.random()
        try store.write(as: li) { tx in id = try tx.create("resident", Self.resident) }
        // Each call is checked against the row as the calls before it left
        // it: a new number first, then a gender that disagrees with it.
        let pending = refusal(store) { tx in
            try tx.update("resident", id, ["id_number": .text(Self.female1949), "birth_date": .text("1949-12-31"), "gender": .text("女")])
            try tx.update("resident", id, ["gender": .text("男")])
        }
        #expect(pending?.message == "resident: 公民身份号码 (id_number) encodes gender 女, but 性别 (gender) is 男")
        // The stored number would refuse this birth date; the pending one takes it.
        #expect(refusal(store) { tx in
            try tx.update("resident", id, ["id_number": .text(Self.female1949), "birth_date": .text("1949-12-31"), "gender": .text("女")])
            try tx.update("resident", id, ["birth_date": .text("1949-12-31"), "name": .text("陈静")])
        } == nil)
        #expect(try store.row("resident", id)?["id_number"] == .text(Self.female1949))
    }

    @Test func aFieldInConflictIsNotComparedOnTheDevice() throws {
        let store = try store([li, wang, zhao])
        var id = RowID.random()
        let made = try store.write(as: li) { tx in id = try tx.create("resident", Self.resident) }
        // Two colleagues set the birth date concurrently (one of them wrong);
        // this replica takes both, as replicas do.
        let birthDot = try #require(Self.dot(of: "birth_date", in: made[0]))
        let fromWang = try Fixtures.signed(wang, seq: 1, prev: Data(), hlc: (now + 1) << 16, rows: [
            RowChange(table: "resident", row: id, writes: [FieldWrite(field: "birth_date", value: .text("1990-03-07"), replaces: [birthDot])]),
        ])
        let fromZhao = try Fixtures.signed(zhao, seq: 1, prev: Data(), hlc: (now + 2) << 16, rows: [
            RowChange(table: "resident", row: id, writes: [FieldWrite(field: "birth_date", value: .text("1991-01-01"), replaces: [birthDot])]),
        ])
        #expect(try store.apply([fromWang, fromZhao]).map(\.status) == [.applied, .applied])
        #expect(try store.row("resident", id)?["birth_date"] == .text("1991-01-01"), "the later value is shown meanwhile")
        #expect(try store.conflicts(table: "resident").count == 1)

        // The shown birth date is not judged while the conflict waits…
        #expect(refusal(store) { tx in try tx.update("resident", id, ["id_number": .text(Self.male1990)]) } == nil)
        // …but resolving it with the wrong one is refused, and with the right one taken.
        #expect(refusal(store) { tx in try tx.update("resident", id, ["birth_date": .text("1991-01-01")]) }?.code == .invalidInput)
        #expect(refusal(store) { tx in try tx.update("resident", id, ["birth_date": .text("1990-03-07")]) } == nil)
        #expect(try store.conflicts(table: "resident").isEmpty)
    }

    // MARK: On the gatekeeper

    /// The dot of the write to `field` in a change set.
    static func dot(of field: String, in signed: SignedChangeSet, row: RowID? = nil) -> Dot? {
        var index: UInt32 = 0
        for change in signed.changeSet.rows {
            for write in change.writes {
                if write.field == field, row == nil || change.row == row {
                    return Dot(device: signed.header.device, seq: signed.header.seq, index: index)
                }
                index += 1
            }
        }
        return nil
    }

    func create(_ id: RowID, _ values: [String: Value], table: String = "resident") -> RowChange {
        RowChange(table: table, row: id, writes: [FieldWrite(field: "_deleted", value: .boolean(false))]
            + values.sorted { $0.key < $1.key }.map { FieldWrite(field: $0.key, value: $0.value) })
    }

    @Test func theGatekeeperRefusesAChangeSetThatBreaksARuleKeepsItAndTheChainGoesOn() throws {
        let server = try store([li])
        let id = RowID.random()
        let first = try Fixtures.signed(li, seq: 1, prev: Data(), hlc: now << 16, rows: [create(id, Self.resident)])
        let birthDot = try #require(Self.dot(of: "birth_date", in: first))
        let bad = try Fixtures.signed(li, seq: 2, prev: first.hash, hlc: (now + 1) << 16, rows: [
            RowChange(table: "resident", row: id, writes: [FieldWrite(field: "birth_date", value: .text("1991-03-07"), replaces: [birthDot])]),
        ])
        let lease = RowID.random()
        let next = try Fixtures.signed(li, seq: 3, prev: bad.hash, hlc: (now + 2) << 16, rows: [
            create(lease, ["grid": .text("G1"), "lease_start": .text("2024-03-01"), "lease_end": .text("2025-02-28")], table: "lease"),
            RowChange(table: "resident", row: id, writes: [FieldWrite(field: "moved_out", value: .text("2024-02-29"))]),
        ])
        let outcomes = try server.apply([first, bad, next], policy: .gatekeeper)
        #expect(outcomes.map(\.status) == [.applied, outcomes[1].status, .applied])
        let reason = "resident: 公民身份号码 (id_number) encodes birth date 1990-03-07, but 出生日期 (birth_date) is 1991-03-07"
        #expect(outcomes[1].error?.code == .schemaViolation)
        #expect(outcomes[1].error?.message == reason)

        // Kept in quarantine with its reason, for its author and the review queue.
        let kept = try server.quarantined()
        #expect(kept.map(\.envelope) == [bad.envelope])
        #expect(kept.first?.code == .schemaViolation && kept.first?.message == reason)
        #expect(kept.first?.device == li.device && kept.first?.seq == 2)
        // Its writes were not merged; the chain went on past it.
        #expect(try server.row("resident", id)?["birth_date"] == .text("1990-03-07"))
        #expect(try server.row("resident", id)?["moved_out"] == .text("2024-02-29"))
        #expect(try server.row("lease", lease)?["lease_end"] == .text("2025-02-28"))
        #expect(try server.heads()[li.device]?.seq == 3)
        #expect(try server.forkedDevices().isEmpty)

        // Offered again: refused again, the same way.
        #expect(try server.apply([bad], policy: .gatekeeper).first?.error?.message == reason)

        // A change set with one good row and one bad row is refused whole.
        let goodLease = RowID.random()
        let mixed = try Fixtures.signed(li, seq: 4, prev: next.hash, hlc: (now + 3) << 16, rows: [
            create(goodLease, ["grid": .text("G1"), "lease_start": .text("2024-03-01"), "lease_end": .text("2025-02-28")], table: "lease"),
            create(RowID.random(), ["grid": .text("G1"), "lease_start": .text("2024-03-01"), "lease_end": .text("2024-02-01")], table: "lease"),
        ])
        let mixedOutcome = try server.apply([mixed], policy: .gatekeeper)
        #expect(mixedOutcome.first?.error?.message == "lease: 租期结束 (lease_end) 2024-02-01 must be after 租期开始 (lease_start) 2024-03-01")
        #expect(try server.row("lease", goodLease) == nil, "nothing of it was merged")
        let fifth = try Fixtures.signed(li, seq: 5, prev: mixed.hash, hlc: (now + 4) << 16, rows: [
            RowChange(table: "resident", row: id, writes: [FieldWrite(field: "name", value: .text("陈晶"))]),
        ])
        #expect(try server.apply([fifth], policy: .gatekeeper).map(\.status) == [.applied])
        #expect(try server.heads()[li.device]?.seq == 5)

        // A replica takes what it is given and does not judge again.
        let replica = try store([li])
        #expect(try replica.apply([first, bad]).map(\.status) == [.applied, .applied])
        #expect(try replica.row("resident", id)?["birth_date"] == .text("1991-03-07"))
    }

    @Test func theGatekeeperJudgesTheRowAsTheBatchLeftIt() throws {
        let server = try store([li])
        let id = RowID.random()
        let first = try Fixtures.signed(li, seq: 1, prev: Data(), hlc: now << 16, rows: [create(id, Self.resident)])
        func replacing(_ field: String, _ value: Value, in earlier: SignedChangeSet) throws -> FieldWrite {
            FieldWrite(field: field, value: value, replaces: [try #require(Self.dot(of: field, in: earlier))])
        }
        // In the same batch, so not yet in the view table: a new person's
        // number, birth date and gender together, then a gender that
        // disagrees with the new number.
        let second = try Fixtures.signed(li, seq: 2, prev: first.hash, hlc: (now + 1) << 16, rows: [
            RowChange(table: "resident", row: id, writes: [
                try replacing("birth_date", .text("1949-12-31"), in: first), try replacing("gender", .text("女"), in: first),
                try replacing("id_number", .text(Self.female1949), in: first),
            ]),
        ])
        let third = try Fixtures.signed(li, seq: 3, prev: second.hash, hlc: (now + 2) << 16, rows: [
            RowChange(table: "resident", row: id, writes: [FieldWrite(field: "gender", value: .text("男"), replaces: [try #require(Self.dot(of: "gender", in: second))])]),
        ])
        let outcomes = try server.apply([first, second, third], policy: .gatekeeper)
        #expect(outcomes[0].status == .applied && outcomes[1].status == .applied)
        #expect(outcomes[2].error?.message == "resident: 公民身份号码 (id_number) encodes gender 女, but 性别 (gender) is 男")
        #expect(try server.row("resident", id)?["gender"] == .text("女"))
    }

    @Test func theGatekeeperSkipsFieldsInConflict() throws {
        let server = try store([li, wang, zhao])
        let id = RowID.random()
        let first = try Fixtures.signed(li, seq: 1, prev: Data(), hlc: now << 16, rows: [create(id, Self.resident)])
        func person(_ by: DeviceIdentity, _ hlc: UInt64, _ number: String, _ birth: String, _ gender: String) throws -> SignedChangeSet {
            try Fixtures.signed(by, seq: 1, prev: Data(), hlc: hlc << 16, rows: [
                RowChange(table: "resident", row: id, writes: try [("birth_date", birth), ("gender", gender), ("id_number", number)].map { field, value in
                    FieldWrite(field: field, value: .text(value), replaces: [try #require(Self.dot(of: field, in: first))])
                }),
            ])
        }
        // Two concurrent corrections, each consistent on its own: the
        // number, birth date and gender are each in conflict afterwards.
        let fromWang = try person(wang, now + 1, Self.female1949, "1949-12-31", "女")
        let fromZhao = try person(zhao, now + 2, Self.male1985, "1985-06-15", "男")
        #expect(try server.apply([first, fromWang, fromZhao], policy: .gatekeeper).map(\.status) == [.applied, .applied, .applied])
        #expect(try server.conflicts(table: "resident").count == 3)

        // With the number in conflict there is nothing to judge a gender or
        // a birth date by.
        let birthDots = [try #require(Self.dot(of: "birth_date", in: fromWang)), try #require(Self.dot(of: "birth_date", in: fromZhao))]
        let second = try Fixtures.signed(li, seq: 2, prev: first.hash, hlc: (now + 3) << 16, rows: [
            RowChange(table: "resident", row: id, writes: [
                FieldWrite(field: "birth_date", value: .text("1949-12-31"), replaces: birthDots),
                FieldWrite(field: "gender", value: .text("女")),
            ]),
        ])
        #expect(try server.apply([second], policy: .gatekeeper).map(\.status) == [.applied])
        // The birth date is settled now; a number that disagrees with it is refused.
        let idDots = [try #require(Self.dot(of: "id_number", in: fromWang)), try #require(Self.dot(of: "id_number", in: fromZhao))]
        let third = try Fixtures.signed(li, seq: 3, prev: second.hash, hlc: (now + 4) << 16, rows: [
            RowChange(table: "resident", row: id, writes: [FieldWrite(field: "id_number", value: .text(Self.male1990), replaces: idDots)]),
        ])
        #expect(try server.apply([third], policy: .gatekeeper).first?.error?.message
            == "resident: 公民身份号码 (id_number) encodes birth date 1990-03-07, but 出生日期 (birth_date) is 1949-12-31")
        let fourth = try Fixtures.signed(li, seq: 4, prev: third.hash, hlc: (now + 5) << 16, rows: [
            RowChange(table: "resident", row: id, writes: [FieldWrite(field: "id_number", value: .text(Self.female1949), replaces: idDots)]),
        ])
        #expect(try server.apply([fourth], policy: .gatekeeper).map(\.status) == [.applied])
        #expect(try server.row("resident", id)?["id_number"] == .text(Self.female1949))
    }
}
