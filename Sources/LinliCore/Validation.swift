import Foundation

/// Formats a text field can be declared to have, checked on the device
/// before a change is made and by every replica (the server included) when
/// a change set is applied: the same code, so both say the same thing.
public enum FieldFormat: String, Codable, Sendable, CaseIterable {
    /// An 18-character citizen identity number (GB 11643-1999) with a
    /// correct check character.
    case citizenID = "citizen_id"
    /// A mainland mobile number: 11 digits starting 13 to 19.
    case mobile
    /// A mainland mobile or landline number (area code 0xx or 0xxx, 7 or 8
    /// digits, an optional extension).
    case phone
    /// One of the 56 recognised ethnic groups (GB 3304), by its name.
    case ethnicity

    /// Throws a `schema_violation` naming the field and what is expected.
    public func check(_ text: String, field: String) throws(LinliError) {
        switch self {
        case .citizenID:
            _ = try CitizenID(text, field: field)
        case .mobile:
            guard PhoneNumber.isMobile(text) else {
                throw LinliError(.schemaViolation, "\(field) must be a mainland mobile number of 11 digits starting 13 to 19, not \(text)",
                                 hint: "e.g. 13800138000, without spaces")
            }
        case .phone:
            guard PhoneNumber.isMobile(text) || PhoneNumber.isLandline(text) else {
                throw LinliError(.schemaViolation, "\(field) must be a mainland mobile or landline number, not \(text)",
                                 hint: "a mobile number (13800138000) or a landline with its area code (010-12345678, 0571-8765432)")
            }
        case .ethnicity:
            guard Ethnicity.names.contains(text) else {
                let suggestion = Ethnicity.names.first { $0 == text + "族" }
                throw LinliError(.schemaViolation, "\(field) must be one of the 56 ethnic groups, not \(text)",
                                 hint: suggestion.map { "did you mean \($0)?" } ?? "write the full name, e.g. 汉族, 回族, 维吾尔族")
            }
        }
    }
}

/// An 18-character citizen identity number (GB 11643-1999): a 6-digit
/// administrative division code, the birth date (8 digits), a 3-digit
/// sequence whose last digit is odd for men and even for women, and a
/// check character (0–9 or X) over the first 17.
public struct CitizenID: Sendable, Equatable {
    public let text: String
    public let birthDate: String
    public enum Gender: String, Sendable { case male = "男", female = "女" }
    public let gender: Gender

    static let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    static let checkCharacters: [Character] = ["1", "0", "X", "9", "8", "7", "6", "5", "4", "3", "2"]
    /// The first two digits: provinces, autonomous regions and
    /// municipalities; 81, 82 and 83 are the residence permits of Hong Kong,
    /// Macau and Taiwan residents.
    static let provinces: Set<Int> = [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
                                      50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83]

    /// The check character of the first 17 digits.
    public static func checkCharacter(_ first17: some StringProtocol) -> Character? {
        let digits = first17.compactMap(\.wholeNumberValue)
        guard first17.count == 17, digits.count == 17 else { return nil }
        return checkCharacters[zip(digits, weights).reduce(0) { $0 + $1.0 * $1.1 } % 11]
    }

    /// Parses and checks a number; a lowercase x is taken as X.
    public init(_ text: String, field: String = "citizen ID") throws(LinliError) {
        let id = text.uppercased()
        guard id.count == 18, id.prefix(17).allSatisfy({ $0.isASCII && $0.isNumber }), let last = id.last,
              last == "X" || (last.isASCII && last.isNumber) else {
            throw LinliError(.schemaViolation, "\(field) must have 18 characters: 17 digits and a digit or X, not \(text)",
                             hint: "copy it from the identity card; the old 15-digit numbers are not accepted")
        }
        let province = Int(id.prefix(2))!
        guard Self.provinces.contains(province) else {
            throw LinliError(.schemaViolation, "\(field) \(text) starts with \(province), which is no province code",
                             hint: "check the first two digits against the identity card")
        }
        let digits = Array(id)
        let birth = String(digits[6..<14])
        let birthDate = "\(birth.prefix(4))-\(birth.dropFirst(4).prefix(2))-\(birth.suffix(2))"
        guard FieldSchema.isDate(birthDate), birthDate >= "1900-01-01" else {
            throw LinliError(.schemaViolation, "\(field) \(text) holds the birth date \(birth), which is not a date",
                             hint: "characters 7 to 14 are the birth date, YYYYMMDD")
        }
        let expected = Self.checkCharacter(id.prefix(17))!
        guard expected == last else {
            throw LinliError(.schemaViolation, "\(field) \(text) has the check character \(last), but its first 17 digits give \(expected)",
                             hint: "a digit was probably mistyped; compare it with the card")
        }
        self.text = id
        self.birthDate = birthDate
        gender = digits[16].wholeNumberValue! % 2 == 1 ? .male : .female
    }

    /// Checks the birth date and gender entered beside the number against
    /// the ones it encodes (either may be absent).
    public func check(birthDate entered: String?, gender enteredGender: String?, field: String = "citizen ID") throws(LinliError) {
        if let entered, !entered.isEmpty, entered != birthDate {
            throw LinliError(.schemaViolation, "the birth date \(entered) differs from the one in \(field) \(text), \(birthDate)",
                             hint: "correct whichever was mistyped")
        }
        if let enteredGender, !enteredGender.isEmpty, enteredGender != gender.rawValue {
            throw LinliError(.schemaViolation, "the gender \(enteredGender) differs from the one \(field) \(text) gives, \(gender.rawValue)",
                             hint: "the 17th digit is odd for men, even for women")
        }
    }
}

/// Mainland telephone numbers.
public enum PhoneNumber {
    /// 11 digits, 13x to 19x; a leading +86 or 0086 is allowed.
    public static func isMobile(_ text: String) -> Bool {
        var number = Substring(text)
        if number.hasPrefix("+86") { number = number.dropFirst(3) } else if number.hasPrefix("0086") { number = number.dropFirst(4) }
        let digits = Array(number.utf8)
        return digits.count == 11 && digits.allSatisfy { (48...57).contains($0) } && digits[0] == 49 && (51...57).contains(digits[1])
    }

    /// An area code (0 then 2 or 3 digits) and a 7- or 8-digit number, with
    /// or without a hyphen between, and an optional extension after a
    /// hyphen: 010-12345678, 057187654321, 0755-8765432-801.
    public static func isLandline(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { (48...57).contains($0) } }) else { return false }
        func subscriber(_ number: String) -> Bool { (7...8).contains(number.count) && !number.hasPrefix("0") && !number.hasPrefix("1") }
        func area(_ code: String) -> Bool { (3...4).contains(code.count) && code.hasPrefix("0") && !code.hasPrefix("00") }
        switch parts.count {
        case 1:
            let all = parts[0]
            guard all.hasPrefix("0") else { return false }
            // Three-digit area codes are 010 and 02x; the rest have four.
            let codeLength = all.hasPrefix("010") || all.hasPrefix("02") ? 3 : 4
            return area(String(all.prefix(codeLength))) && subscriber(String(all.dropFirst(codeLength)))
        case 2: return area(parts[0]) && subscriber(parts[1])
        case 3: return area(parts[0]) && subscriber(parts[1]) && (1...6).contains(parts[2].count)
        default: return false
        }
    }
}

/// The 56 ethnic groups recognised in China, in the order of GB 3304.
public enum Ethnicity {
    public static let ordered = [
        "汉族", "蒙古族", "回族", "藏族", "维吾尔族", "苗族", "彝族", "壮族", "布依族", "朝鲜族",
        "满族", "侗族", "瑶族", "白族", "土家族", "哈尼族", "哈萨克族", "傣族", "黎族", "傈僳族",
        "佤族", "畲族", "高山族", "拉祜族", "水族", "东乡族", "纳西族", "景颇族", "柯尔克孜族", "土族",
        "达斡尔族", "仫佬族", "羌族", "布朗族", "撒拉族", "毛南族", "仡佬族", "锡伯族", "阿昌族", "普米族",
        "塔吉克族", "怒族", "乌孜别克族", "俄罗斯族", "鄂温克族", "德昂族", "保安族", "裕固族", "京族", "塔塔尔族",
        "独龙族", "鄂伦春族", "赫哲族", "门巴族", "珞巴族", "基诺族",
    ]
    public static let names = Set(ordered)
}

/// A rule across fields of one row of a table, checked on the device
/// before a change is made and by the gatekeeper before it accepts a change
/// set (replicas take what the gatekeeper accepted and do not judge again).
///
/// A rule is checked only when the change writes at least one of the
/// fields it compares, against the values the row has with the change: so
/// an old row that breaks a rule added later stays as it is until someone
/// edits one of those fields. A field without a value (null) is not
/// compared.
///
/// In JSON:
///
/// ```json
/// {"kind": "citizen_id_matches", "id": "id_number", "birth_date": "birth_date", "gender": "gender"}
/// {"kind": "date_order", "start": "lease_start", "end": "lease_end", "strict": true}
/// ```
public enum TableRule: Codable, Sendable, Hashable {
    /// The birth date and gender the citizen ID in field `id` encodes must
    /// equal the ones in `birthDate` (a date field) and `gender` (a text
    /// field taking 男 or 女); either may be left out. Each pair is compared
    /// when one of its two fields is written.
    case citizenIDMatches(id: String, birthDate: String?, gender: String?)
    /// The date (or timestamp) in `end` must come after the one in `start`
    /// (`strict`), or at least not before it.
    case dateOrder(start: String, end: String, strict: Bool)

    public static let citizenIDMatchesKind = "citizen_id_matches"
    public static let dateOrderKind = "date_order"

    /// The rule's kind, as written in JSON.
    public var kind: String {
        switch self {
        case .citizenIDMatches: Self.citizenIDMatchesKind
        case .dateOrder: Self.dateOrderKind
        }
    }

    /// The fields the rule compares.
    public var fields: [String] {
        switch self {
        case .citizenIDMatches(let id, let birthDate, let gender): [id] + [birthDate, gender].compactMap { $0 }
        case .dateOrder(let start, let end, _): [start, end]
        }
    }

    enum CodingKeys: String, CodingKey { case kind, id, birthDate = "birth_date", gender, start, end, strict }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .kind) {
        case Self.citizenIDMatchesKind:
            self = .citizenIDMatches(
                id: try container.decode(String.self, forKey: .id),
                birthDate: try container.decodeIfPresent(String.self, forKey: .birthDate),
                gender: try container.decodeIfPresent(String.self, forKey: .gender))
        case Self.dateOrderKind:
            self = .dateOrder(
                start: try container.decode(String.self, forKey: .start), end: try container.decode(String.self, forKey: .end),
                strict: try container.decodeIfPresent(Bool.self, forKey: .strict) ?? false)
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: container,
                debugDescription: "unknown rule kind \(other); use \(Self.citizenIDMatchesKind) or \(Self.dateOrderKind)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        switch self {
        case .citizenIDMatches(let id, let birthDate, let gender):
            try container.encode(id, forKey: .id)
            try container.encodeIfPresent(birthDate, forKey: .birthDate)
            try container.encodeIfPresent(gender, forKey: .gender)
        case .dateOrder(let start, let end, let strict):
            try container.encode(start, forKey: .start)
            try container.encode(end, forKey: .end)
            try container.encode(strict, forKey: .strict)
        }
    }

    /// Throws unless every field the rule names is declared in `table` with
    /// a type the rule can compare.
    func validate(in table: TableSchema) throws(LinliError) {
        let rule = "rule \(kind) of table \(table.name)"
        func declared(_ name: String, role: String) throws(LinliError) -> FieldSchema {
            guard let field = table.field(name) else {
                throw LinliError(.invalidInput, "\(rule) names \(name) as its \(role) field, which \(table.name) does not declare")
            }
            return field
        }
        switch self {
        case .citizenIDMatches(let id, let birthDate, let gender):
            let idField = try declared(id, role: "id")
            guard idField.type == .text, idField.format == .citizenID else {
                throw LinliError(.invalidInput, "\(rule) takes the ID from \(table.describe(id)), which must be a text field with format \(FieldFormat.citizenID.rawValue)")
            }
            guard birthDate != nil || gender != nil else {
                throw LinliError(.invalidInput, "\(rule) compares \(table.describe(id)) with nothing; name a birth_date field, a gender field or both")
            }
            if let birthDate {
                let field = try declared(birthDate, role: "birth_date")
                guard field.type == .date else {
                    throw LinliError(.invalidInput, "\(rule) compares the birth date with \(table.describe(birthDate)), a \(field.type.rawValue) field; it must be a date field")
                }
            }
            if let gender {
                let field = try declared(gender, role: "gender")
                guard field.type == .text else {
                    throw LinliError(.invalidInput, "\(rule) compares the gender with \(table.describe(gender)), a \(field.type.rawValue) field; it must be a text field")
                }
                let genders = [CitizenID.Gender.male.rawValue, CitizenID.Gender.female.rawValue]
                if let choices = field.choices, !genders.allSatisfy(choices.contains) {
                    throw LinliError(.invalidInput, "\(rule) compares the gender with \(table.describe(gender)), whose choices must include 男 and 女")
                }
            }
        case .dateOrder(let start, let end, _):
            let startField = try declared(start, role: "start")
            let endField = try declared(end, role: "end")
            guard start != end else {
                throw LinliError(.invalidInput, "\(rule) compares \(table.describe(start)) with itself")
            }
            for field in [startField, endField] where field.type != .date && field.type != .timestamp {
                throw LinliError(.invalidInput, "\(rule) orders \(table.describe(field.name)), a \(field.type.rawValue) field; it must be a date or timestamp field")
            }
            guard startField.type == endField.type else {
                throw LinliError(.invalidInput, "\(rule) orders \(table.describe(start)), a \(startField.type.rawValue) field, and \(table.describe(end)), a \(endField.type.rawValue) field; both must have the same type")
            }
        }
    }

    /// Throws a `schema_violation` when the row's `values` break the rule in
    /// a comparison that involves a field in `written`.
    func check(_ values: [String: Value], touching written: Set<String>, in table: TableSchema) throws(LinliError) {
        switch self {
        case .citizenIDMatches(let id, let birthDate, let gender):
            // A number that does not parse is the field format's to refuse.
            guard let text = values[id]?.text, !text.isEmpty, let citizen = try? CitizenID(text) else { return }
            let idWritten = written.contains(id)
            if let birthDate, idWritten || written.contains(birthDate), let entered = values[birthDate]?.text, !entered.isEmpty,
               entered != citizen.birthDate {
                throw LinliError(
                    .schemaViolation,
                    "\(table.name): \(table.describe(id)) encodes birth date \(citizen.birthDate), but \(table.describe(birthDate)) is \(entered)",
                    hint: "characters 7 to 14 of the number are the birth date; correct whichever was mistyped")
            }
            if let gender, idWritten || written.contains(gender), let entered = values[gender]?.text, !entered.isEmpty,
               entered != citizen.gender.rawValue {
                throw LinliError(
                    .schemaViolation,
                    "\(table.name): \(table.describe(id)) encodes gender \(citizen.gender.rawValue), but \(table.describe(gender)) is \(entered)",
                    hint: "the 17th digit of the number is odd for men, even for women; correct whichever was mistyped")
            }
        case .dateOrder(let start, let end, let strict):
            guard written.contains(start) || written.contains(end), let first = values[start], let last = values[end] else { return }
            let inOrder: Bool
            switch (first, last) {
            case (.text(let first), .text(let last)): inOrder = strict ? last > first : last >= first
            case (.integer(let first), .integer(let last)): inOrder = strict ? last > first : last >= first
            default: return
            }
            guard inOrder else {
                throw LinliError(
                    .schemaViolation,
                    "\(table.name): \(table.describe(end)) \(last) must \(strict ? "be after" : "not be before") \(table.describe(start)) \(first)",
                    hint: "correct whichever date was mistyped")
            }
        }
    }
}

extension TableSchema {
    /// Checks the table's rules that compare at least one field in
    /// `written` against `values`, the values the row has with the change
    /// (fields left out, or null, are not compared). Throws a
    /// `schema_violation` naming the fields, with their labels, and the
    /// values.
    public func checkRules(_ values: [String: Value], touching written: Set<String>) throws(LinliError) {
        for rule in rules where rule.fields.contains(where: written.contains) {
            try rule.check(values, touching: written, in: self)
        }
    }

    /// A field as people read it in messages: `出生日期 (birth_date)`, or
    /// the bare name when it has no label.
    func describe(_ field: String) -> String {
        guard let label = self.field(field)?.label, !label.isEmpty else { return field }
        return "\(label) (\(field))"
    }
}
