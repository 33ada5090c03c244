import Foundation
import LinliCore
import LinliTesting
import Testing

/// Deleting a record others refer to asks first: a house with residents
/// is not gone by a slip of the keyboard.
@Suite struct SafeDeleteTests {
    @Test func aHouseWithResidentsIsDeletedOnlyWhenConfirmedOrForced() async throws {
        let district = try await District()
        let house = try district.add("li", "house", ["grid=G1", "address=幸福路12号", "unit=2单元", "room=301"])
        _ = try district.add("li", "person", ["grid=G1", "name=陈静", "residence_type=户籍人口", "house=\(house)"])
        let empty = try district.add("li", "house", ["grid=G1", "address=幸福路14号"])
        func exists(_ id: String) throws -> Bool {
            let shown = try district.json("li", ["show", id]) as? [String: Any]
            return shown?["deleted"] as? Bool == false
        }

        // Not at a terminal (a script): refused, naming why and what to do.
        let refused = try district.run("li", ["delete", house])
        #expect(refused.status == 2, "\(refused.error)")
        #expect(refused.error.contains("人口 1 条") && refused.error.contains("--force"), "\(refused.error)")
        #expect(try exists(house))

        // At a terminal: asked, with the residents listed; "n" keeps it.
        let linli = Programs.built("linli")
        let kept = try PseudoTerminal(linli, ["delete", house] + district.device("li"))
        try await kept.waitFor("[y/N]")
        #expect(kept.screen.contains("陈"), "\(kept.screen)")
        kept.type("n\r")
        #expect(try await kept.exitStatus() == 130, "\(kept.screen)")
        #expect(try exists(house))

        // "y" deletes it; --force deletes without asking; a house no one
        // refers to is deleted at once.
        let confirmed = try PseudoTerminal(linli, ["delete", house] + district.device("li"))
        try await confirmed.waitFor("[y/N]")
        confirmed.type("y\r")
        #expect(try await confirmed.exitStatus() == 0, "\(confirmed.screen)")
        #expect(try !exists(house))
        let other = try district.add("li", "house", ["grid=G1", "address=幸福路16号"])
        _ = try district.add("li", "person", ["grid=G1", "name=王强", "residence_type=户籍人口", "house=\(other)"])
        #expect(try district.run("li", ["delete", other, "--force"]).status == 0)
        #expect(try district.run("li", ["delete", empty]).status == 0)
        #expect(try !exists(other) && !exists(empty))
    }
}
