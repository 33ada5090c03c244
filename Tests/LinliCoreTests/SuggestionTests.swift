import LinliCore
import Testing

@Suite struct SuggestionTests {
    @Test func aTypoGetsTheNameMeantAndNonsenseGetsNothing() {
        let names = ["person", "house", "rental", "tenant", "phone", "problem"]
        #expect(Suggestion.closest(to: "persn", among: names) == "person")
        #expect(Suggestion.closest(to: "phne", among: names) == "phone")
        #expect(Suggestion.closest(to: "PERSON", among: names) == "person")
        #expect(Suggestion.closest(to: "xyz", among: names) == nil, "three edits from everything")
        #expect(Suggestion.closest(to: "ab", among: ["xy"]) == nil, "a short name is not a typo of another short name two edits away")
        #expect(Suggestion.closest(to: "ab", among: ["a"]) == "a", "one edit from a short name is")
        #expect(Suggestion.closest(to: "", among: names) == nil)
    }

    @Test func namesAndLabelsResolveAgainstTheSchema() throws {
        let schema = Schema(name: "t", version: 1, tables: [
            TableSchema("person", label: "人口", scope: .gridField("grid"), fields: [FieldSchema("phone", .text, label: "联系电话"), FieldSchema("grid", .text)]),
        ])
        #expect(try schema.resolveNames(table: "人口", field: "联系电话") == ("person", "phone"))
        #expect(try schema.resolveNames(table: nil, field: "phone") == (nil, "phone"))
        do {
            _ = try schema.resolveNames(table: "persn", field: nil)
            Issue.record("an unknown table was taken")
        } catch {
            #expect(error.message == "there is no table persn" && error.hint == "did you mean person?")
        }
        do {
            _ = try schema.resolveNames(table: "person", field: "phne")
            Issue.record("an unknown field was taken")
        } catch {
            #expect(error.message == "table person has no field phne" && error.hint == "did you mean phone?")
        }
    }
}
