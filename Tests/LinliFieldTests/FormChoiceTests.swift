import Foundation
import LinliCore
import LinliTesting
import Testing

/// References typed as an address or a name and picked from a numbered
/// list; choices picked by their number. On a pseudo-terminal, as typed.
@Suite struct FormChoiceTests {
    @Test func aResidentsHouseIsChosenByTypingItsAddressAndChoicesByNumber() async throws {
        let district = try await District()
        let first = try district.add("li", "house", ["grid=G1", "address=幸福路12号", "unit=2单元", "room=301"])
        let second = try district.add("li", "house", ["grid=G1", "address=幸福路12号", "unit=2单元", "room=302"])
        let lone = try district.add("li", "house", ["grid=G1", "address=和平街3号", "room=101"])

        // On the command line: a unique match is taken, several are refused with the matches named.
        let taken = try district.json("li", ["add", "person", "grid=G1", "name=王强", "residence_type=户籍人口", "house=和平街3号"])
        #expect(((taken as? [String: Any])?["fields"] as? [String: Any])?["house"] as? String == lone, "\(taken)")
        let ambiguous = try district.run("li", ["add", "person", "grid=G1", "name=王强", "residence_type=户籍人口", "house=幸福路12号"])
        #expect(ambiguous.status == 2 && ambiguous.error.contains("2 房屋"), "\(ambiguous.error)")
        let none = try district.run("li", ["add", "person", "grid=G1", "name=王强", "residence_type=户籍人口", "house=幸福路99号"])
        #expect(none.status != 0 && none.error.contains("no 房屋"), "\(none.error)")

        // In the form.
        let form = try PseudoTerminal(Programs.built("linli"), ["add", "person", "-i", "--json"] + district.device("li"))
        var seen = 0
        func answer(_ prompt: String, _ text: String) async throws {
            seen = try await form.waitFor(prompt, after: seen)
            form.type(text + "\r")
        }
        try await answer("网格 grid", "G1")
        try await answer("姓名 name", "陈静")
        // The birth date and gender come from the ID number: shown, and kept with Enter.
        try await answer("公民身份号码 id_number", "11010519491231002x")
        seen = try await form.waitFor("由身份号码得出", after: seen)
        #expect(form.screen.contains("出生日期 1949-12-31") && form.screen.contains("性别 女"), "\(form.screen)")
        try await answer("性别 gender（1 男 / 2 女） [女]", "")
        try await answer("民族 ethnicity", "汉")
        try await answer("出生日期 birth_date（YYYY-MM-DD） [1949-12-31]", "")
        try await answer("户籍地 hukou_place", "")
        try await answer("人口类型 residence_type（1 户籍人口", "1")
        try await answer("联系电话 phone", "")
        try await answer("职业 occupation", "")
        try await answer("工作单位 employer", "")
        try await answer("house（地址、姓名或编号", "幸福路12号")
        // Two houses match: a numbered list, and the one at 302 is chosen by its number.
        seen = try await form.waitFor("选择编号", after: seen)
        let listed = form.screen.split(whereSeparator: \.isNewline).filter { $0.contains(") 房屋") }
        #expect(listed.count == 2, "\(form.screen)")
        let number = listed.first { $0.contains("302") }?.trimmingCharacters(in: .whitespaces).prefix { $0.isNumber } ?? ""
        form.type("\(number)\r")
        try await answer("关爱标签 care_tags", "")
        // A move-in before the birth date is refused at once, not at the end.
        try await answer("迁入日期 moved_in", "1940/1/1")
        seen = try await form.waitFor("✗", after: seen)
        #expect(form.screen.contains("1949-12-31") && form.screen.contains("1940-01-01"), "\(form.screen)")
        try await answer("迁入日期 moved_in", "")
        try await answer("迁出日期 moved_out", "")
        try await answer("证件类型 id_type", "")
        try await answer("其他证件号码 document_number", "")
        #expect(try await form.exitStatus() == 0, "\(form.screen)")
        let json = form.screen[form.screen.range(of: "{")!.lowerBound...]
        let fields = (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["fields"] as? [String: Any]
        #expect(fields?["house"] as? String == second && fields?["house"] as? String != first, "\(String(describing: fields))")
        #expect(fields?["gender"] as? String == "女" && fields?["residence_type"] as? String == "户籍人口", "\(String(describing: fields))")
        #expect(fields?["ethnicity"] as? String == "汉族", "\(String(describing: fields))")
        // Masked unless --reveal: neither the number nor the birth date rebuilds it.
        #expect(fields?["id_number"] as? String == "110105********002X" && fields?["birth_date"] as? String == "****-**-**", "\(String(describing: fields))")
    }
}
