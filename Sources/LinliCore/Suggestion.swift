/// "Did you mean …?" for names a person typed: the closest known name by
/// edit distance, when it is close enough to be the one meant.
public enum Suggestion {
    /// The known name nearest to `typed` (at most two edits, and fewer than
    /// half its length), or nil.
    public static func closest(to typed: String, among names: some Sequence<String>) -> String? {
        let target = Array(typed.lowercased())
        var best: (name: String, distance: Int)?
        for name in names {
            let distance = editDistance(target, Array(name.lowercased()))
            if distance <= 2, distance * 2 < max(target.count, 1) + 1, distance < (best?.distance ?? Int.max) { best = (name, distance) }
        }
        return best?.name
    }

    /// Levenshtein distance between two character sequences. Names here
    /// are short (nameBytesMax), so the quadratic table is small.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

extension Schema {
    /// The table and field names a filter typed (a name or a Chinese
    /// label), checked against this schema: an unknown one is refused with
    /// the closest name, not answered with nothing.
    public func resolveNames(table typedTable: String?, field typedField: String?) throws(LinliError) -> (table: String?, field: String?) {
        var table: TableSchema?
        if let typedTable {
            guard let found = self.table(typedTable) ?? tables.first(where: { $0.label == typedTable }) else {
                let hint = Suggestion.closest(to: typedTable, among: tables.map(\.name)).map { "did you mean \($0)?" }
                    ?? "the tables are \(tables.map(\.name).joined(separator: ", "))"
                throw LinliError(.invalidInput, "there is no table \(typedTable)", hint: hint)
            }
            table = found
        }
        guard let typedField else { return (table?.name, nil) }
        let candidates = table.map { [$0] } ?? tables
        for candidate in candidates {
            if let field = candidate.field(typedField) ?? candidate.fields.first(where: { $0.label == typedField }) { return (table?.name, field.name) }
        }
        let names = Set(candidates.flatMap { $0.fields.map(\.name) })
        let place = table.map { "table \($0.name)" } ?? "any table"
        throw LinliError(.invalidInput, "\(place) has no field \(typedField)",
                         hint: Suggestion.closest(to: typedField, among: names.sorted()).map { "did you mean \($0)?" } ?? "see `linli schema` for the fields")
    }
}
