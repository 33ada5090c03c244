import Foundation
import LinliCore
import Testing

@Suite("Scope") struct ScopeTests {
    static let kioskHex = "0123456789abcdef0011223344556677"

    @Test("the text form of a scope reads back as the same scope", arguments: [
        "system", "public", "grid:G1", "grid:east-3_b.2", "kiosk:0123456789abcdef0011223344556677",
    ])
    func roundTrip(text: String) throws {
        let scope = try #require(Scope(text))
        #expect(scope.description == text)
        #expect(Scope(scope.description) == scope)
    }

    @Test("each text form names the expected case")
    func parsesToCases() throws {
        #expect(Scope("system") == .system)
        #expect(Scope("public") == .public)
        #expect(Scope("grid:G1") == .grid("G1"))
        let device = try #require(DeviceID(hex: Self.kioskHex))
        #expect(Scope("kiosk:" + Self.kioskHex) == .kiosk(device))
        #expect(Scope.kiosk(device).description == "kiosk:" + Self.kioskHex)
        #expect(Scope.grid("G1").description == "grid:G1")
    }

    @Test("a kiosk id in uppercase hex is not a scope: each scope has one spelling")
    func kioskUppercase() throws {
        #expect(Scope("kiosk:" + Self.kioskHex.uppercased()) == nil)
    }

    @Test("text that is not a scope gives nil", arguments: [
        "grid:", "grid:a b", "kiosk:zz", "other", "", "System", "PUBLIC", " system", "system ", "grid",
        "grid:a/b", "grid:a:b", "grid:a\u{0}", "kiosk:", "kiosk:0123456789abcdef001122334455667",
        "kiosk:0123456789abcdef00112233445566778", "kiosk:0123456789abcdef00112233445566zz",
        "grid:" + String(repeating: "a", count: 65), "grid:网格一",
        "kiosk:0123456789ABCDEF0011223344556677",
    ])
    func invalid(text: String) {
        #expect(Scope(text) == nil)
    }

    @Test("grid names of up to 64 bytes of letters, digits, - _ . are valid")
    func gridNames() {
        #expect(Scope.isValidGridName("G1"))
        #expect(Scope.isValidGridName("a-b_c.d"))
        #expect(Scope.isValidGridName(String(repeating: "a", count: 64)))
        #expect(!Scope.isValidGridName(String(repeating: "a", count: 65)))
        #expect(!Scope.isValidGridName("网格一")) // ASCII only: every implementation agrees
        #expect(!Scope.isValidGridName(""))
        #expect(!Scope.isValidGridName("a b"))
        #expect(!Scope.isValidGridName("a:b"))
        #expect(Scope("grid:" + String(repeating: "a", count: 64)) == .grid(String(repeating: "a", count: 64)))
    }

    @Test("scopes order by their text form")
    func ordering() throws {
        let device = try #require(DeviceID(hex: Self.kioskHex))
        let scopes: [Scope] = [.system, .public, .grid("b"), .grid("a"), .kiosk(device)]
        #expect(scopes.sorted().map(\.description) == scopes.map(\.description).sorted())
        #expect(Scope.grid("a") < Scope.grid("b"))
        #expect(!(Scope.system < Scope.system))
    }
}
