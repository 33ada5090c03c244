/// What a device may write, granted by its certificate.
public enum Role: String, Codable, Sendable, CaseIterable {
    /// Writes only into the scopes of the grids its certificate names.
    case inspector
    /// Writes only into its own submission scope, `kiosk:<its device id>`.
    case kiosk
    /// Writes into any grid, public or kiosk scope: settles conflicts.
    case staff
    /// The sync server: signs snapshots, writes no records.
    case server
    /// The trust authority: writes only the system scope (certificates,
    /// revocations, rotations of its own key).
    case authority

    /// Throws unless a device with this role and these grids may write a
    /// change set into `scope`.
    public func authorize(scope: Scope, device: DeviceID, grids: Set<String>) throws(LinliError) {
        switch (self, scope) {
        case (.authority, .system): return
        case (_, .system):
            throw LinliError(.notPermitted, "only the authority issues certificates, revocations and rotations; this device is a \(rawValue)")
        case (.authority, _):
            throw LinliError(.notPermitted, "the authority writes only trust records, not \(scope) records")
        case (.staff, _): return
        case (.inspector, .grid(let grid)) where grids.contains(grid): return
        case (.inspector, .grid(let grid)):
            throw LinliError(.outOfScope, "this inspector covers \(grids.sorted().joined(separator: ", ")), not grid \(grid)",
                             hint: "ask an administrator to add the grid to the device's certificate")
        case (.kiosk, .kiosk(let kiosk)) where kiosk == device: return
        case (.kiosk, _):
            throw LinliError(.outOfScope, "a kiosk writes only its own submissions (kiosk:\(device.hex)), not \(scope)")
        case (.inspector, _):
            throw LinliError(.outOfScope, "an inspector writes only into its grids, not \(scope)")
        case (.server, _):
            throw LinliError(.notPermitted, "the server writes no records")
        }
    }

    /// Throws unless a device with this role may write rows of `table`:
    /// resolutions of the review queue are staff's alone.
    public func authorize(table: String) throws(LinliError) {
        if table == ReviewSchema.resolution, self != .staff {
            throw LinliError(.notPermitted, "only central staff record resolutions of the review queue; this device is a \(rawValue)",
                             hint: "settle conflicts and refused changes at the conflict desk with a staff key")
        }
    }
}

/// The built-in tables of the system scope: trust records travel as
/// ordinary change sets of the authority, so every replica receives and
/// verifies them like any data.
public enum TrustSchema {
    public static let certificate = "sys_certificate"
    public static let revocation = "sys_revocation"
    public static let authorityKey = "sys_authority_key"

    /// Table names starting with this are reserved for these tables.
    public static let reservedPrefix = "sys_"

    public static let tables: [TableSchema] = [
        TableSchema(certificate, label: "设备证书", scope: .system, fields: [
            FieldSchema("device", .bytes, label: "设备", required: true),
            FieldSchema("public_key", .bytes, label: "公钥", required: true),
            FieldSchema("role", .text, label: "角色", required: true, choices: Role.allCases.map(\.rawValue)),
            FieldSchema("grids", .text, label: "网格"),
            FieldSchema("valid_from_seq", .integer, label: "起始序号", required: true),
            FieldSchema("label", .text, label: "名称"),
        ]),
        TableSchema(revocation, label: "吊销", scope: .system, fields: [
            FieldSchema("device", .bytes, label: "设备", required: true),
            FieldSchema("last_valid_seq", .integer, label: "最后有效序号", required: true),
            FieldSchema("reason", .text, label: "原因"),
        ]),
        TableSchema(authorityKey, label: "授权密钥轮换", scope: .system, fields: [
            FieldSchema("public_key", .bytes, label: "新公钥", required: true),
            FieldSchema("valid_from_seq", .integer, label: "起始序号", required: true),
            FieldSchema("new_key_signature", .bytes, label: "新密钥签名", required: true),
        ]),
    ]

    /// The schema a replica runs: the domain tables plus the trust tables.
    public static func adding(to schema: Schema) -> Schema {
        var combined = schema
        combined.tables += (tables + [ReviewSchema.table]).filter { table in !schema.tables.contains { $0.name == table.name } }
        return combined
    }
}
