import Foundation

/// Formats a text field can be declared to have, checked on the device
/// before a change is made and by every replica (the server included) when
/// a change set is applied: the same code, so both say the same thing.
public enum FieldFormat: String, Codable, Sendable, CaseIterable {
    /// An 18-character identity number of the GB 11643-1999 structure with
    /// a correct check character: a resident identity card, a residence
    /// permit of Hong Kong, Macau and Taiwan residents (810000, 820000,
    /// 830000) or a foreigner's permanent residence ID card of 2023 (first
    /// digit 9). Which of them a record holds is its document type's to
    /// say (``TableRule/documentMatches(type:id:number:)``).
    case citizenID = "citizen_id"
    /// The number of another identity document (a passport, a travel
    /// permit): 5 to 20 ASCII letters and digits, stored upper case.
    case document
    /// A mainland mobile number: 11 digits starting 13 to 19.
    case mobile
    /// A mainland mobile or landline number (area code 0xx or 0xxx, 7 or 8
    /// digits, an optional extension).
    case phone
    /// One of the 56 recognised ethnic groups (GB 3304) or its two extra
    /// codes, by its full name.
    case ethnicity

    /// The one form a value of this format is stored in, from the forms
    /// people type: a citizen ID with its check character upper case and
    /// no spaces; a mobile number as its 11 digits, without +86, spaces or
    /// hyphens; a landline as area code, hyphen, number (and hyphen,
    /// extension); an ethnic group by its full name (汉 gives 汉族). Text
    /// that is no value of the format comes back as it was, for
    /// ``check(_:field:)`` to refuse with its reason.
    ///
    /// Devices store this form; the gatekeeper accepts the other forms it
    /// accepted before (an older device's lowercase x), and rules across
    /// records compare normalised values.
    public func normalised(_ text: String) -> String {
        switch self {
        case .citizenID:
            let compact = FormatText.halfWidth(text).filter { !$0.isWhitespace }.uppercased()
            return (try? CitizenID(compact)) != nil ? compact : text
        case .mobile:
            return PhoneNumber.normalisedMobile(text) ?? text
        case .phone:
            return PhoneNumber.normalisedMobile(text) ?? PhoneNumber.normalisedLandline(text) ?? text
        case .ethnicity:
            return Ethnicity.fullName(text) ?? text
        case .document:
            let compact = FormatText.halfWidth(text).filter { !$0.isWhitespace && $0 != "-" }.uppercased()
            return IdentityDocument.isDocumentNumber(compact) ? compact : text
        }
    }

    /// Throws a `schema_violation` naming the field and what is expected.
    public func check(_ text: String, field: String) throws(LinliError) {
        switch self {
        case .citizenID:
            _ = try CitizenID(text, field: field)
        case .mobile:
            guard PhoneNumber.isMobile(text) else {
                throw LinliError(.schemaViolation, "\(field) must be a mainland mobile number of 11 digits starting 13 to 19, not \(text)",
                                 hint: "e.g. 13800138000 (spaces, hyphens and +86 are taken off)")
            }
        case .phone:
            guard PhoneNumber.isMobile(text) || PhoneNumber.isLandline(text) else {
                throw LinliError(.schemaViolation, "\(field) must be a mainland mobile or landline number, not \(text)",
                                 hint: "a mobile number (13800138000) or a landline with its area code (\(PhoneNumber.landlineExamples.joined(separator: ", ")))")
            }
        case .ethnicity:
            guard Ethnicity.names.contains(text) else {
                let suggestion = Ethnicity.fullName(text)
                throw LinliError(.schemaViolation, "\(field) must be one of the 56 ethnic groups (or 未识别民族, 外国血统中国籍人士), not \(text)",
                                 hint: suggestion.map { "did you mean \($0)? it is stored by its full name" } ?? "write the name as on the card, e.g. 汉 or 汉族, 回族, 维吾尔族")
            }
        case .document:
            guard IdentityDocument.isDocumentNumber(text.uppercased()) else {
                throw LinliError(.schemaViolation, "\(field) must be a document number of 5 to 20 letters and digits, not \(text)",
                                 hint: "copy it from the passport or permit, e.g. E12345678 or H12345678")
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
    /// Which document of the GB 11643 structure the number is.
    public let kind: IdentityDocument

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
        let kind: IdentityDocument
        if id.hasPrefix("9") {
            // A foreigner's permanent residence ID card (2023): 9, the
            // province that issued it, the country code, then as below.
            guard let issuer = Int(id.dropFirst().prefix(2)), Self.provinces.contains(issuer), issuer < 71 else {
                throw LinliError(.schemaViolation, "\(field) \(text) starts with 9 (a foreigner's permanent residence ID) but \(id.dropFirst().prefix(2)) is no province that issues one",
                                 hint: "characters 2 and 3 are the issuing province, e.g. 11 for Beijing")
            }
            kind = .foreignPermanentResidentID
        } else if [81, 82, 83].contains(province) {
            guard id.dropFirst(2).prefix(4) == "0000" else {
                throw LinliError(.schemaViolation, "\(field) \(text) starts with \(province) (a residence permit) but not with \(province)0000",
                                 hint: "residence permits of Hong Kong, Macau and Taiwan residents start 810000, 820000 and 830000")
            }
            kind = .residencePermit
        } else {
            guard Self.provinces.contains(province) else {
                throw LinliError(.schemaViolation, "\(field) \(text) starts with \(province), which is no province code",
                                 hint: "check the first two digits against the identity card")
            }
            kind = .residentIDCard
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
        self.kind = kind
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
    /// Landline examples for hints; a test checks each is taken.
    public static let landlineExamples = ["010-62345678", "0571-87654321", "0755-8765432-801"]

    /// 11 digits, 13x to 19x; a leading +86 or 0086 is allowed.
    public static func isMobile(_ text: String) -> Bool {
        var number = Substring(text)
        if number.hasPrefix("+86") { number = number.dropFirst(3) } else if number.hasPrefix("0086") { number = number.dropFirst(4) }
        let digits = Array(number.utf8)
        return digits.count == 11 && digits.allSatisfy { (48...57).contains($0) } && digits[0] == 49 && (51...57).contains(digits[1])
    }

    /// A mobile number as people type it (`138 0000 1111`,
    /// `138-0000-1111`, `+86 138…`, `0086…`, full-width digits) as its 11
    /// digits; nil when it is no mobile number.
    public static func normalisedMobile(_ text: String) -> String? {
        var number = Substring(FormatText.halfWidth(text).filter { !$0.isWhitespace && $0 != "-" })
        if number.hasPrefix("+86") { number = number.dropFirst(3) } else if number.hasPrefix("0086") { number = number.dropFirst(4) }
        else if number.count == 13, number.hasPrefix("86") { number = number.dropFirst(2) }
        let digits = String(number)
        return isMobile(digits) ? digits : nil
    }

    /// Whether `code` is a mainland area code: 010 and 020 to 029 have
    /// three digits, all others four (0 then 3 to 9 then two digits). The
    /// same rule holds with and without a hyphen after the code.
    static func isAreaCode(_ code: Substring) -> Bool {
        let digits = Array(code.utf8)
        guard digits.allSatisfy({ (48...57).contains($0) }), digits.first == 48 else { return false }
        switch digits.count {
        case 3: return (digits[1] == 49 && digits[2] == 48) || digits[1] == 50
        case 4: return (51...57).contains(digits[1])
        default: return false
        }
    }

    /// A subscriber number: 7 or 8 digits, not starting with 0 or 1
    /// (those lead to trunk and service numbers).
    static func isSubscriber(_ number: Substring) -> Bool {
        let digits = Array(number.utf8)
        return (7...8).contains(digits.count) && digits.allSatisfy { (48...57).contains($0) } && digits[0] >= 50
    }

    /// An area code and a 7- or 8-digit number, with or without a hyphen
    /// between, and an optional extension of 1 to 6 digits after a hyphen:
    /// 010-62345678, 057187654321, 0755-8765432-801.
    public static func isLandline(_ text: String) -> Bool { landlineParts(text) != nil }

    static func landlineParts(_ text: String) -> (area: Substring, number: Substring, extension: Substring?)? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        switch parts.count {
        case 1:
            let all = parts[0]
            guard all.utf8.allSatisfy({ (48...57).contains($0) }), all.hasPrefix("0") else { return nil }
            let codeLength = all.hasPrefix("010") || all.hasPrefix("02") ? 3 : 4
            let area = all.prefix(codeLength), number = all.dropFirst(codeLength)
            return isAreaCode(area) && isSubscriber(number) ? (area, number, nil) : nil
        case 2:
            return isAreaCode(parts[0]) && isSubscriber(parts[1]) ? (parts[0], parts[1], nil) : nil
        case 3:
            let ext = parts[2]
            guard isAreaCode(parts[0]), isSubscriber(parts[1]), (1...6).contains(ext.count), ext.utf8.allSatisfy({ (48...57).contains($0) }) else { return nil }
            return (parts[0], parts[1], ext)
        default:
            return nil
        }
    }

    /// A landline as people type it (`010 6234 5678`, `(010)62345678`,
    /// `01062345678`, `+86 10 62345678`) as `010-62345678`, with `-801`
    /// for an extension; nil when it is no landline.
    public static func normalisedLandline(_ text: String) -> String? {
        var compact = FormatText.halfWidth(text).filter { !$0.isWhitespace && $0 != "(" && $0 != ")" }
        if compact.hasPrefix("+86") { compact = "0" + compact.dropFirst(3) } else if compact.hasPrefix("0086") { compact = "0" + compact.dropFirst(4) }
        compact = compact.replacingOccurrences(of: "--", with: "-")
        // A hyphen inside the subscriber number (010-6234-5678) is spacing.
        var parts = compact.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        if parts.count >= 3, isAreaCode(Substring(parts[0])), !isSubscriber(Substring(parts[1])), isSubscriber(Substring(parts[1] + parts[2])) {
            parts[1] += parts[2]
            parts.remove(at: 2)
        }
        guard let (area, number, ext) = landlineParts(parts.joined(separator: "-")) else { return nil }
        return "\(area)-\(number)" + (ext.map { "-\($0)" } ?? "")
    }
}

/// Text as typed on Chinese keyboards.
public enum FormatText {
    /// Full-width digits, letters and signs (０-９, Ｘ, ＋, －, （）) and
    /// the ideographic space as their ASCII forms.
    public static func halfWidth(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0xFF01...0xFF5E: scalars.append(Unicode.Scalar(scalar.value - 0xFEE0)!)
            case 0x3000: scalars.append(" ")
            default: scalars.append(scalar)
            }
        }
        return String(scalars)
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
    /// GB 3304's two codes beside the 56 groups: 97 and 98.
    public static let others = ["未识别民族", "外国血统中国籍人士"]
    /// Every name a field of format `ethnicity` stores.
    public static let names = Set(ordered + others)

    /// The full name of a group written as on the identity card (汉, 维吾尔)
    /// or in full; nil for no group.
    public static func fullName(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if names.contains(trimmed) { return trimmed }
        let full = trimmed + "族"
        return names.contains(full) ? full : nil
    }
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
/// {"kind": "citizen_id_matches", "id": "id_number", "age": "age"}
/// {"kind": "date_order", "start": "lease_start", "end": "lease_end", "strict": true}
/// {"kind": "not_in_future", "field": "birth_date"}
/// ```
///
/// Rules that speak of time (an age, a date not in the future) are judged
/// at the moment the change was made (its change set's clock on the
/// gatekeeper, the device's clock before signing), so judging the same
/// change again later gives the same answer.
public enum TableRule: Codable, Sendable, Hashable {
    /// The birth date and gender the citizen ID in field `id` encodes must
    /// equal the ones in `birthDate` (a date field) and `gender` (a text
    /// field taking 男 or 女) and the age in whole years (an integer field
    /// `age`) at the moment of the change; any of the three may be left
    /// out. Each pair is compared when one of its two fields is written.
    case citizenIDMatches(id: String, birthDate: String?, gender: String?, age: String? = nil)
    /// The date (or timestamp) in `end` must come after the one in `start`
    /// (`strict`), or at least not before it.
    case dateOrder(start: String, end: String, strict: Bool)
    /// The date (or timestamp) in `field` must not be later than the
    /// moment of the change: a birth date cannot be in the future. A date
    /// passes while it is that day anywhere on Earth (UTC+14).
    case notInFuture(field: String)
    /// The document type in `type` (a text field whose choices are
    /// ``IdentityDocument`` names) and the number: an 18-character one in
    /// `id` (format `citizen_id`) must be of that type, and another
    /// document's number in `number` (format `document`) must have that
    /// type's form. Without a type nothing is compared.
    case documentMatches(type: String, id: String?, number: String?)

    public static let citizenIDMatchesKind = "citizen_id_matches"
    public static let documentMatchesKind = "document_matches"
    public static let dateOrderKind = "date_order"
    public static let notInFutureKind = "not_in_future"

    /// The rule's kind, as written in JSON.
    public var kind: String {
        switch self {
        case .citizenIDMatches: Self.citizenIDMatchesKind
        case .dateOrder: Self.dateOrderKind
        case .notInFuture: Self.notInFutureKind
        case .documentMatches: Self.documentMatchesKind
        }
    }

    /// The fields the rule compares.
    public var fields: [String] {
        switch self {
        case .citizenIDMatches(let id, let birthDate, let gender, let age): [id] + [birthDate, gender, age].compactMap { $0 }
        case .dateOrder(let start, let end, _): [start, end]
        case .notInFuture(let field): [field]
        case .documentMatches(let type, let id, let number): [type] + [id, number].compactMap { $0 }
        }
    }

    enum CodingKeys: String, CodingKey { case kind, id, birthDate = "birth_date", gender, age, start, end, strict, field, type, number }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .kind) {
        case Self.citizenIDMatchesKind:
            self = .citizenIDMatches(
                id: try container.decode(String.self, forKey: .id),
                birthDate: try container.decodeIfPresent(String.self, forKey: .birthDate),
                gender: try container.decodeIfPresent(String.self, forKey: .gender),
                age: try container.decodeIfPresent(String.self, forKey: .age))
        case Self.dateOrderKind:
            self = .dateOrder(
                start: try container.decode(String.self, forKey: .start), end: try container.decode(String.self, forKey: .end),
                strict: try container.decodeIfPresent(Bool.self, forKey: .strict) ?? false)
        case Self.notInFutureKind:
            self = .notInFuture(field: try container.decode(String.self, forKey: .field))
        case Self.documentMatchesKind:
            self = .documentMatches(type: try container.decode(String.self, forKey: .type), id: try container.decodeIfPresent(String.self, forKey: .id),
                                    number: try container.decodeIfPresent(String.self, forKey: .number))
        case let other:
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: container,
                debugDescription: "unknown rule kind \(other); use \(Self.citizenIDMatchesKind), \(Self.dateOrderKind), \(Self.notInFutureKind) or \(Self.documentMatchesKind)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        switch self {
        case .citizenIDMatches(let id, let birthDate, let gender, let age):
            try container.encode(id, forKey: .id)
            try container.encodeIfPresent(birthDate, forKey: .birthDate)
            try container.encodeIfPresent(gender, forKey: .gender)
            try container.encodeIfPresent(age, forKey: .age)
        case .dateOrder(let start, let end, let strict):
            try container.encode(start, forKey: .start)
            try container.encode(end, forKey: .end)
            try container.encode(strict, forKey: .strict)
        case .notInFuture(let field):
            try container.encode(field, forKey: .field)
        case .documentMatches(let type, let id, let number):
            try container.encode(type, forKey: .type)
            try container.encodeIfPresent(id, forKey: .id)
            try container.encodeIfPresent(number, forKey: .number)
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
        case .citizenIDMatches(let id, let birthDate, let gender, let age):
            let idField = try declared(id, role: "id")
            guard idField.type == .text, idField.format == .citizenID else {
                throw LinliError(.invalidInput, "\(rule) takes the ID from \(table.describe(id)), which must be a text field with format \(FieldFormat.citizenID.rawValue)")
            }
            guard birthDate != nil || gender != nil || age != nil else {
                throw LinliError(.invalidInput, "\(rule) compares \(table.describe(id)) with nothing; name a birth_date, gender or age field")
            }
            if let age {
                let field = try declared(age, role: "age")
                guard field.type == .integer else {
                    throw LinliError(.invalidInput, "\(rule) compares the age with \(table.describe(age)), a \(field.type.rawValue) field; it must be an integer field")
                }
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
        case .notInFuture(let name):
            let field = try declared(name, role: "field")
            guard field.type == .date || field.type == .timestamp else {
                throw LinliError(.invalidInput, "\(rule) bounds \(table.describe(name)), a \(field.type.rawValue) field; it must be a date or timestamp field")
            }
        case .documentMatches(let type, let id, let number):
            let typeField = try declared(type, role: "type")
            let names = Set(IdentityDocument.allCases.map(\.rawValue))
            guard typeField.type == .text, let choices = typeField.choices, !choices.isEmpty, choices.allSatisfy(names.contains) else {
                throw LinliError(.invalidInput, "\(rule) takes the document type from \(table.describe(type)), which must be a text field whose choices are document types: \(IdentityDocument.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard id != nil || number != nil else {
                throw LinliError(.invalidInput, "\(rule) compares \(table.describe(type)) with nothing; name an id field, a number field or both")
            }
            if let id, try declared(id, role: "id").format != .citizenID {
                throw LinliError(.invalidInput, "\(rule) takes the 18-character number from \(table.describe(id)), which must have format \(FieldFormat.citizenID.rawValue)")
            }
            if let number, try declared(number, role: "number").format != .document {
                throw LinliError(.invalidInput, "\(rule) takes the document number from \(table.describe(number)), which must have format \(FieldFormat.document.rawValue)")
            }
        }
    }

    /// Throws a `schema_violation` when the row's `values` break the rule in
    /// a comparison that involves a field in `written`; `madeAt` is the
    /// moment of the change, milliseconds since 1970.
    func check(_ values: [String: Value], touching written: Set<String>, in table: TableSchema, madeAt: UInt64) throws(LinliError) {
        switch self {
        case .citizenIDMatches(let id, let birthDate, let gender, let age):
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
            if let age, idWritten || written.contains(age), case .integer(let entered) = values[age] ?? .null {
                // Between the earliest and the latest time zone the day of
                // the change differs by one: either age passes.
                let ages = Set([-12, 14].map { CalendarDay.age(born: citizen.birthDate, on: CalendarDay.date(of: madeAt, offsetHours: $0)) })
                guard ages.contains(Int(clamping: entered)) else {
                    throw LinliError(
                        .schemaViolation,
                        "\(table.name): \(table.describe(id)) gives a birth date of \(citizen.birthDate), so the age is \(ages.sorted().map(String.init).joined(separator: " or ")), not \(table.describe(age)) \(entered)",
                        hint: "the age is in whole years on the day it is recorded; correct whichever was mistyped")
                }
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
        case .notInFuture(let field):
            guard written.contains(field), let value = values[field] else { return }
            let latest = CalendarDay.date(of: madeAt, offsetHours: 14)
            let late: Bool
            switch value {
            case .text(let date): late = date > latest
            case .integer(let milliseconds): late = milliseconds > Int64(clamping: madeAt) + Int64(Limits.clockDriftMillisecondsMax)
            default: return
            }
            guard !late else {
                throw LinliError(
                    .schemaViolation,
                    "\(table.name): \(table.describe(field)) \(FieldText.show(value, field: table.field(field) ?? FieldSchema(field, .text), reveal: true)) is in the future; it was recorded on \(CalendarDay.date(of: madeAt, offsetHours: 8))",
                    hint: "check the year: a date of this kind cannot be later than the day it is recorded")
            }
        case .documentMatches(let type, let id, let number):
            guard let typeText = values[type]?.text, let document = IdentityDocument(rawValue: typeText) else { return }
            // A holder of a passport or permit may have an 18-character
            // number too (a residence permit): only a type of the three
            // 18-character documents is compared with it.
            if let id, document.takesEighteenCharacters, written.contains(type) || written.contains(id), let text = values[id]?.text, !text.isEmpty,
               let parsed = try? CitizenID(text), parsed.kind != document {
                throw LinliError(
                    .schemaViolation,
                    "\(table.name): \(table.describe(id)) is the number of a \(parsed.kind.rawValue), but \(table.describe(type)) is \(document.rawValue)",
                    hint: "a \(parsed.kind.rawValue) number \(parsed.kind.numberForm); set the document type to \(parsed.kind.rawValue), or correct the number")
            }
            if let number, !document.takesEighteenCharacters, written.contains(type) || written.contains(number),
               let text = values[number]?.text, !text.isEmpty, !document.accepts(text.uppercased()) {
                throw LinliError(
                    .schemaViolation,
                    "\(table.name): \(table.describe(number)) \(text) is not the number of a \(document.rawValue)",
                    hint: "a \(document.rawValue) number \(document.numberForm)")
            }
        }
    }
}

extension TableSchema {
    /// Checks the table's rules that compare at least one field in
    /// `written` against `values`, the values the row has with the change
    /// (fields left out, or null, are not compared), at `madeAt`
    /// (milliseconds since 1970: when the change was made). Throws a
    /// `schema_violation` naming the fields, with their labels, and the
    /// values.
    public func checkRules(_ values: [String: Value], touching written: Set<String>, madeAt: UInt64) throws(LinliError) {
        for rule in rules where rule.fields.contains(where: written.contains) {
            try rule.check(values, touching: written, in: self, madeAt: madeAt)
        }
    }

    /// A field as people read it in messages: `出生日期 (birth_date)`, or
    /// the bare name when it has no label.
    func describe(_ field: String) -> String {
        guard let label = self.field(field)?.label, !label.isEmpty else { return field }
        return "\(label) (\(field))"
    }
}

/// Calendar days as `YYYY-MM-DD` text, without Foundation's calendars: the
/// same answer on every machine and in every locale.
public enum CalendarDay {
    /// The date at `milliseconds` since 1970 in the zone `offsetHours`
    /// from UTC.
    public static func date(of milliseconds: UInt64, offsetHours: Int) -> String {
        let seconds = Int64(clamping: milliseconds / 1000) + Int64(offsetHours) * 3600
        var days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return String(format: "%04lld-%02lld-%02lld", year, month, day)
    }

    /// Whole years from `born` to `day`, both `YYYY-MM-DD`.
    public static func age(born: String, on day: String) -> Int {
        func parts(_ text: String) -> (Int, Int) {
            let fields = text.split(separator: "-").compactMap { Int($0) }
            guard fields.count == 3 else { return (0, 0) }
            return (fields[0], fields[1] * 100 + fields[2])
        }
        let (bornYear, bornDay) = parts(born), (year, dayOfYear) = parts(day)
        return year - bornYear - (dayOfYear < bornDay ? 1 : 0)
    }
}

/// The identity documents a person is recorded by. The first three carry
/// an 18-character number of the GB 11643 structure; the others a number
/// of their own form.
public enum IdentityDocument: String, Sendable, CaseIterable {
    case residentIDCard = "居民身份证"
    case residencePermit = "港澳台居民居住证"
    case foreignPermanentResidentID = "外国人永久居留身份证"
    case passport = "护照"
    case hongKongMacaoPermit = "港澳居民来往内地通行证"
    case taiwanPermit = "台湾居民来往大陆通行证"

    /// Whether the number is an 18-character one (format `citizen_id`).
    public var takesEighteenCharacters: Bool { [.residentIDCard, .residencePermit, .foreignPermanentResidentID].contains(self) }

    /// What the number looks like, for hints.
    public var numberForm: String {
        switch self {
        case .residentIDCard: "has 18 characters and starts with a province code, e.g. 110105…"
        case .residencePermit: "has 18 characters and starts 810000 (Hong Kong), 820000 (Macau) or 830000 (Taiwan)"
        case .foreignPermanentResidentID: "has 18 characters and starts with 9"
        case .passport: "has 5 to 17 letters and digits, e.g. E12345678"
        case .hongKongMacaoPermit: "is H (Hong Kong) or M (Macau) and 8 or 10 digits, e.g. H12345678"
        case .taiwanPermit: "has 8 or 10 digits, e.g. 12345678"
        }
    }

    /// 5 to 20 ASCII letters and digits.
    public static func isDocumentNumber(_ text: String) -> Bool {
        (5...20).contains(text.utf8.count) && text.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) }
    }

    /// Whether `number` (upper case) has this document's form.
    public func accepts(_ number: String) -> Bool {
        let bytes = Array(number.utf8)
        func digits(_ slice: ArraySlice<UInt8>) -> Bool { slice.allSatisfy { (48...57).contains($0) } }
        switch self {
        case .residentIDCard, .residencePermit, .foreignPermanentResidentID:
            return (try? CitizenID(number))?.kind == self
        case .passport:
            return (5...17).contains(bytes.count) && Self.isDocumentNumber(number)
        case .hongKongMacaoPermit:
            return [9, 11].contains(bytes.count) && (bytes[0] == UInt8(ascii: "H") || bytes[0] == UInt8(ascii: "M")) && digits(bytes.dropFirst())
        case .taiwanPermit:
            return [8, 10].contains(bytes.count) && digits(bytes[...])
        }
    }
}
