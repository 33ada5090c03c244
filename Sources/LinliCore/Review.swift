/// What the review queue holds: the things a person must judge because
/// the merge must not decide them alone.
public enum ReviewKind: String, Sendable, Codable, CaseIterable {
    /// A field with more than one surviving value.
    case conflict
    /// A row deleted while someone else edited one of its fields.
    case deleteVersusEdit = "delete_vs_edit"
    /// A change set the server refused, kept with its reason.
    case refused
    /// A rule across records broken by a merge (``Invariant``).
    case invariant
}

/// What a staff member decided about a review item.
public enum ResolutionDecision: String, Sendable, Codable, CaseIterable {
    /// One of the competing values was chosen.
    case chosen
    /// A corrected value was entered instead of the competing ones.
    case corrected
    /// A refused change set was looked at and will not be applied.
    case dismissed
    /// A corrected copy of a refused change set was written on its author's behalf.
    case resubmitted
    /// Chosen by a rule over many items at once (bulk resolution).
    case newestWins = "newest_wins"
}

/// The built-in table that keeps the audit trail of the review queue:
/// one row per resolution, written in the same signed change set as the
/// writes it explains, in the scope of the record it is about. Who and when
/// are the change set's signer and clock; this row says what was replaced
/// and why.
public enum ReviewSchema {
    public static let resolution = "sys_resolution"

    public static let table = TableSchema(resolution, label: "处理记录", scope: .subject, fields: [
        FieldSchema("kind", .text, label: "类别", required: true, choices: ReviewKind.allCases.map(\.rawValue)),
        FieldSchema("item", .text, label: "待办编号", required: true),
        FieldSchema("decision", .text, label: "决定", required: true, choices: ResolutionDecision.allCases.map(\.rawValue)),
        FieldSchema("subject_table", .text, label: "表"),
        FieldSchema("subject_row", .text, label: "记录"),
        FieldSchema("subject_field", .text, label: "字段"),
        FieldSchema("value", .text, label: "新值"),
        FieldSchema("replaced", .text, label: "被替换的值"),
        FieldSchema("refused_hash", .text, label: "被拒变更集"),
        FieldSchema("note", .text, label: "说明", required: true),
    ])
}

/// A rule across records that concurrent, individually valid edits can
/// break; checked against the merged state and shown in the review queue.
public enum Invariant: Sendable, Hashable {
    /// No two live rows of `table` in one community share `field`.
    /// Grids map to communities through the area register (`area` rows of
    /// level 网格 whose parent is a 社区); an unmapped grid is its own.
    case unique(name: String, table: String, field: String)
    /// No live, not moved-out child row points at a parent whose `field`
    /// holds one of `values` (a tenant on a terminated lease, a resident of
    /// a house marked vacant).
    case noChildrenWhen(name: String, parent: String, field: String, values: [String], child: String, reference: String, endField: String)
    /// `end` is not before `start` (a lease that ends before it starts).
    case dateOrder(name: String, table: String, start: String, end: String)
    /// Every reference of a live row points at a live row: a resident
    /// added to a house that someone deleted meanwhile, or a record that
    /// names one the replica never received. Over every `reference` field
    /// the schema declares.
    case liveReferences(name: String)
    /// The live rows of `table` that agree on every field of `group` hold
    /// at most `maximum` in `field`, summed: no volunteer serves more than
    /// 24 hours on one day, however many devices recorded them.
    case sumAtMost(name: String, table: String, group: [String], field: String, maximum: Double)

    public var name: String {
        switch self {
        case .unique(let name, _, _), .noChildrenWhen(let name, _, _, _, _, _, _), .dateOrder(let name, _, _, _), .liveReferences(let name),
             .sumAtMost(let name, _, _, _, _): name
        }
    }

    /// The invariants of the community records.
    public static let community: [Invariant] = [
        .unique(name: "duplicate_citizen_id", table: "person", field: "id_number"),
        .noChildrenWhen(name: "tenant_on_terminated_lease", parent: "rental", field: "status", values: ["已终止"],
                        child: "tenant", reference: "rental", endField: "moved_out"),
        .noChildrenWhen(name: "vacant_house_with_residents", parent: "house", field: "use", values: ["空置"],
                        child: "person", reference: "house", endField: "moved_out"),
        .dateOrder(name: "lease_ends_before_start", table: "rental", start: "lease_start", end: "lease_end"),
        .liveReferences(name: "dangling_reference"),
        .sumAtMost(name: "service_hours_over_a_day", table: "service_record", group: ["volunteer", "date"], field: "hours", maximum: 24),
    ]

    /// What a person reads about a broken invariant, in Chinese and English.
    public var explanation: String {
        switch name {
        case "duplicate_citizen_id": "同一社区两条人员记录的身份证号相同 · the same citizen ID on two person records of one community"
        case "tenant_on_terminated_lease": "租赁已终止但仍有在住租客 · a tenant still on a terminated lease"
        case "vacant_house_with_residents": "房屋标为空置但仍有居住人员 · a house marked vacant that has residents"
        case "lease_ends_before_start": "租赁结束日期早于开始日期 · a lease that ends before it starts"
        case "dangling_reference": "记录所指的记录已删除或不存在 · a record refers to one that is deleted or missing"
        case "service_hours_over_a_day": "同一志愿者一天的服务时长超过 24 小时 · more than 24 service hours for one volunteer on one day"
        default: name
        }
    }
}
