import Foundation
import LinliClient
import LinliCore
import LinliCrypto
import LinliStore
import LinliTesting
import Testing

/// What an inspector's device refuses before anything is signed, on a real
/// replica with the community pack: a person already recorded under the
/// same citizen ID, references to records that are missing, deleted or of
/// another grid, and a pre-registration linked to a neighbour's house.
@Suite struct RecordEntryTests {
    let li = Fixtures.identity(81, user: "李明")

    func work() throws -> FieldWork {
        let store = try Fixtures.store(schema: SchemaPacks.community, knowing: [li])
        return FieldWork(records: Records(store: store), identity: li, grids: ["G1", "G2"])
    }

    func refusal(_ body: () throws -> Void) -> LinliError? {
        do { try body(); return nil } catch let error as LinliError { return error } catch { return nil }
    }

    func person(_ work: FieldWork, _ values: [String: Value]) throws -> RecordView {
        try work.create(try work.records.table("person"),
                        ["grid": .text("G1"), "name": .text("陈静"), "residence_type": .text("户籍人口")].merging(values) { $1 })
    }

    @Test func aPersonWithACitizenIDAlreadyOnTheDeviceIsRefusedNamingTheRecordUnlessAsked() throws {
        let work = try work()
        let first = try person(work, ["id_number": .text("11010519491231002X")])
        // Typed with a lowercase x, through the form: the same number.
        let typed = try work.records.parse(["id_number=11010519491231002x", "name=陈晶"], table: work.records.table("person"))
        let error = try #require(refusal { _ = try person(work, typed) })
        #expect(error.code == .invalidInput, "linli add exits 2")
        #expect(error.message.contains(String(first.id.hex.prefix(8))) && error.message.contains("110105********002X"), "\(error.message)")
        #expect(!error.message.contains("11010519491231002X"), "the number stays masked: \(error.message)")
        #expect(error.hint?.contains("--duplicate-ok") == true)
        // Another grid of the device is checked too; a deleted record is not a duplicate.
        #expect(refusal { _ = try person(work, ["grid": .text("G2"), "id_number": .text("11010519491231002X")]) } != nil)
        let second = try work.create(try work.records.table("person"),
                                     ["grid": .text("G1"), "name": .text("陈晶"), "residence_type": .text("户籍人口"), "id_number": .text("11010519491231002X")],
                                     duplicateOK: true)
        #expect(second.values["id_number"] == .text("11010519491231002X"))
        // Once both are gone, the number is free again.
        try work.delete(try work.records.table("person"), first.id)
        try work.delete(try work.records.table("person"), second.id)
        _ = try person(work, ["id_number": .text("11010519491231002X")])
    }

    @Test func aReferenceMustNameALiveRecordOfTheSameGrid() throws {
        let work = try work()
        let houses = try work.records.table("house")
        let inG1 = try work.create(houses, ["grid": .text("G1"), "address": .text("幸福路12号"), "unit": .text("2"), "room": .text("301")])
        let inG2 = try work.create(houses, ["grid": .text("G2"), "address": .text("和平街3号")])
        _ = try person(work, ["house": .bytes(inG1.id.data)])

        let otherGrid = try #require(refusal { _ = try person(work, ["house": .bytes(inG2.id.data)]) })
        #expect(otherGrid.code == .invalidInput && otherGrid.message.contains("G2") && otherGrid.message.contains("G1"), "\(otherGrid.message)")

        let missing = RowID.random()
        let notHeld = try #require(refusal { _ = try person(work, ["house": .bytes(missing.data)]) })
        #expect(notHeld.message.contains(String(missing.hex.prefix(8))) && notHeld.message.contains("does not hold"), "\(notHeld.message)")

        try work.delete(houses, inG2.id)
        let moved = try person(work, ["grid": .text("G2")])
        let deleted = try #require(refusal { _ = try work.update(try work.records.table("person"), moved.id, ["house": .bytes(inG2.id.data)]) })
        #expect(deleted.message.contains("deleted"), "\(deleted.message)")
        // Clearing a reference is always allowed.
        _ = try work.update(try work.records.table("person"), moved.id, ["house": .null, "occupation": .text("教师")])
    }

    @Test func aPreRegistrationIsLinkedOnlyToTheHouseOfItsAddress() throws {
        let work = try work()
        let kiosk = Fixtures.identity(82, user: "kiosk")
        try work.records.store.registerDeviceKey(device: kiosk.device, publicKey: kiosk.key.publicKey)
        var submission = RowID.random()
        try work.records.store.write(as: kiosk) { tx in
            submission = try tx.create("rental_prereg", [
                "landlord": .text("周敏"), "landlord_phone": .text("13900001111"), "address": .text("幸福路12号2单元302"),
                "lease_start": .text("2026-09-01"), "lease_end": .text("2027-08-31"),
            ])
        }
        let houses = try work.records.table("house")
        let room301 = try work.create(houses, ["grid": .text("G1"), "address": .text("幸福路12号"), "unit": .text("2"), "room": .text("301")])
        let room302 = try work.create(houses, ["grid": .text("G1"), "address": .text("幸福路１２号"), "unit": .text("2"), "room": .text("302")])
        let wrong = try #require(refusal { _ = try work.verify(submission.hex, grid: "G1", house: room301.id, overrides: []) })
        #expect(wrong.message.contains("302") && wrong.message.contains("301"), "\(wrong.message)")
        let rental = try work.verify(submission.hex, grid: "G1", house: room302.id, overrides: [])
        #expect(rental.values["house"] == .bytes(room302.id.data))
    }

    @Test func aSubmissionIsDeclinedWithItsReasonAndLeavesThePendingList() throws {
        let work = try work()
        let kiosk = Fixtures.identity(83, user: "kiosk")
        try work.records.store.registerDeviceKey(device: kiosk.device, publicKey: kiosk.key.publicKey)
        var declined = RowID.random(), kept = RowID.random()
        try work.records.store.write(as: kiosk) { tx in
            declined = try tx.create("signup", ["name": .text("路人甲"), "phone": .text("13900002222")])
            kept = try tx.create("signup", ["name": .text("陈静"), "phone": .text("13900003333")])
        }
        #expect(Set(try work.records.pendingSubmissions().map(\.id)) == [declined, kept])
        #expect(refusal { _ = try work.reject(declined.hex, reason: "  ") }?.hint?.contains("--reason") == true)
        let record = try work.reject(String(declined.hex.prefix(8)), reason: "非本社区居民")
        #expect(record.values["status"] == .text("不予登记") && record.values["reason"] == .text("非本社区居民"))
        #expect(try work.records.pendingSubmissions().map(\.id) == [kept])
        #expect(refusal { _ = try work.reject(declined.hex, reason: "again") }?.message.contains("already declined") == true)
        // A verified one is not declined: its record exists.
        _ = try work.verify(kept.hex, grid: "G1", house: nil, overrides: [])
        #expect(refusal { _ = try work.reject(kept.hex, reason: "late") }?.message.contains("already verified") == true)
    }
}
