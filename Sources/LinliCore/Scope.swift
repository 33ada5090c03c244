/// Who may see and change a record. Every change set has exactly one scope,
/// so the server can route whole signed change sets without cutting them.
public enum Scope: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Trust records (certificates, revocations, authority statements):
    /// every device receives them.
    case system
    /// Public information (activities, notices): every device, kiosks too.
    case `public`
    /// One grid's records: the devices that cover the grid, and staff.
    case grid(String)
    /// One kiosk's self-service submissions: that kiosk, the grid's
    /// inspectors once assigned, and staff.
    case kiosk(DeviceID)

    public var description: String {
        switch self {
        case .system: "system"
        case .public: "public"
        case .grid(let grid): "grid:" + grid
        case .kiosk(let device): "kiosk:" + device.hex
        }
    }

    /// Parses the text form; `nil` when it is not a scope.
    public init?(_ text: String) {
        if text == "system" {
            self = .system
        } else if text == "public" {
            self = .public
        } else if text.hasPrefix("grid:") {
            let grid = String(text.dropFirst(5))
            guard Scope.isValidGridName(grid) else { return nil }
            self = .grid(grid)
        } else if text.hasPrefix("kiosk:"), let device = DeviceID(hex: String(text.dropFirst(6))) {
            self = .kiosk(device)
        } else {
            return nil
        }
    }

    /// Grid names are short identifiers: letters, digits, `-`, `_` and `.`.
    public static func isValidGridName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.unicodeScalars.allSatisfy { scalar in
                scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                    || scalar == "-" || scalar == "_" || scalar == "."
            }
    }

    public static func < (lhs: Scope, rhs: Scope) -> Bool { lhs.description < rhs.description }
}
