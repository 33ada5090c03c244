import Foundation
import GRDB
@testable import LinliClient
import LinliCore
import LinliStore
import LinliTesting
import Testing

/// `find` on a device: the trigram index of each record type, kept by
/// triggers through local writes and merges.
struct FindIndexTests {
    let li = Fixtures.identity(41, user: "李明")
    let wang = Fixtures.identity(42, user: "王芳")
    let folder = Fixtures.TemporaryDirectory()

    func replica(_ name: String) throws -> ReplicaStore {
        try Fixtures.store(path: folder.path("\(name).sqlite"), schema: SchemaPacks.community, knowing: [li, wang])
    }

    func house(_ tx: LocalTransaction, _ address: String, _ unit: String, _ room: String) throws -> RowID {
        try tx.create("house", ["grid": .text("G1"), "address": .text(address), "unit": .text(unit), "room": .text(room)])
    }

    func ids(_ records: Records, _ text: String, in table: String? = nil) throws -> Set<RowID> {
        Set(try records.find(text, in: table).map(\.id))
    }

    @Test func anAddressTypedAsOneRunFindsTheHouseByItsParts() throws {
        let store = try replica("li")
        var houses: [RowID] = []
        var resident = RowID.random()
        try store.write(as: li) { tx in
            houses.append(try house(tx, "幸福路12号", "2单元", "301"))
            houses.append(try house(tx, "幸福路12号", "2单元", "302"))
            houses.append(try house(tx, "幸福路14号", "1单元", "301"))
            resident = try tx.create("person", ["grid": .text("G1"), "name": .text("陈静"), "id_number": .text("11010519491231002X"),
                                                "residence_type": .text("户籍人口"), "phone": .text("13800138000")])
        }
        let records = Records(store: store)
        #expect(try ids(records, "幸福路12号2单元301") == [houses[0]])
        #expect(try ids(records, "幸福路12号 301") == [houses[0]])
        #expect(try ids(records, "幸福路12号") == [houses[0], houses[1]])
        #expect(try ids(records, "301", in: "house") == [houses[0], houses[2]])
        // Two characters, under the trigram's three: still found.
        #expect(try ids(records, "陈静") == [resident])
        #expect(try ids(records, "19491231") == [resident])
        #expect(try ids(records, "138 陈") == [resident])
        #expect(try ids(records, "幸福路13号").isEmpty)

        // Edits and deletions reach the index at once.
        try store.write(as: li) { tx in try tx.update("house", houses[0], ["room": .text("303")]) }
        #expect(try ids(records, "2单元301", in: "house").isEmpty)
        #expect(try ids(records, "幸福路12号2单元303") == [houses[0]])
        try store.write(as: li) { tx in try tx.delete("house", houses[1]) }
        #expect(try ids(records, "幸福路12号") == [houses[0]])

        // The search is a lookup in the trigram index, not a scan of the table.
        let (sql, arguments) = FindIndex.matching(try records.table("house"), terms: ["幸福路12号"])
        let plan = try store.database.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String? ?? "" }
        }
        #expect(plan.contains { $0.contains("VIRTUAL TABLE INDEX") }, "\(plan)")
    }

    @Test func theIndexIsMadeFromWhatIsThereAndFollowsMergedChangeSets() throws {
        let phone = try replica("li")
        let other = try replica("wang")
        // Written before the index exists: the first find fills it.
        try phone.write(as: li) { tx in _ = try house(tx, "和平街3号", "1单元", "101") }
        let records = Records(store: phone)
        #expect(try records.find("和平街3号1单元101").count == 1)
        // Change sets merged from another device are indexed by the triggers.
        try other.write(as: wang) { tx in _ = try house(tx, "和平街5号", "3单元", "502") }
        _ = try phone.apply(try other.changeSets().map { OfferedChangeSet(decoding: $0.envelope) })
        #expect(try records.find("和平街5号3单元502").count == 1)
        #expect(try records.find("和平街").count == 2)
        // Made once: a second search finds the index in place.
        let triggers = try phone.database.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'linli_find_house_%'")
        }
        _ = try records.find("和平街")
        #expect(triggers == 3)
        #expect(try phone.database.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'linli_find_house_%'")
        } == 3)
    }

    @Test func anEmptyOrHugeSearchIsRefused() throws {
        let records = Records(store: try replica("li"))
        #expect(throws: LinliError.self) { try records.find("   ") }
        #expect(throws: LinliError.self) { try records.find(String(repeating: "路", count: Limits.findTextCharactersMax + 1)) }
    }
}
