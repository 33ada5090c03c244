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
        } else if text.hasPrefix("kiosk:"), let device = DeviceID(hex: String(text.dropFirst(6))),
                  device.hex == text.dropFirst(6) {
            // Only the canonical lowercase form: one scope, one spelling.
            self = .kiosk(device)
        } else {
            return nil
        }
    }

    /// Grid names are short ASCII identifiers: letters, digits, `-`, `_`
    /// and `.`, 1 to 64 of them. (ASCII, so every implementation and every
    /// Unicode version agrees on what is valid; the people-facing grid name,
    /// in Chinese, is a label elsewhere.)
    public static func isValidGridName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { byte in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
            }
    }

    public static func < (lhs: Scope, rhs: Scope) -> Bool { lhs.description < rhs.description }
}
