import Foundation
import LinliCore

/// Where a PostgreSQL store is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`,
/// optionally followed by `?sslmode=disable|prefer|require`.
///
/// `postgresql://` is accepted too. The port is 5432 when missing. User,
/// password and database may be percent-encoded. `sslmode` is `prefer`
/// when missing: TLS when the server offers it (the server's certificate
/// is then verified against the system's trust roots), plain otherwise;
/// `require` refuses a server without TLS. The password never appears in
/// ``description`` or in an error.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, prefer, require
    }

    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var tls: TLSMode

    public static let defaultPort = 5432
    static let form = "postgres://USER@HOST:PORT/DATABASE"

    public init(user: String, password: String? = nil, host: String, port: Int = PostgresLocation.defaultPort,
                database: String, tls: TLSMode = .prefer) {
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.database = database
        self.tls = tls
    }

    /// Parses a store URL, or says exactly what is wrong with it.
    public init(url text: String) throws(LinliError) {
        let shown = Self.redacted(text)
        func refuse(_ problem: String) -> LinliError {
            LinliError(.invalidInput, "the PostgreSQL URL \(shown) \(problem)", hint: "write \(Self.form)")
        }
        guard let schemeEnd = text.range(of: "://") else { throw refuse("is not a URL") }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw refuse("starts with \(scheme)://; a PostgreSQL store's URL starts with postgres://")
        }
        var rest = text[schemeEnd.upperBound...]
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw refuse("names no database (the part after the last /)") }
        let authority = rest[..<slash]
        let path = rest[rest.index(after: slash)...]
        guard let at = authority.lastIndex(of: "@") else { throw refuse("names no user (the part before @)") }
        let userInfo = authority[..<at]
        let hostPort = authority[authority.index(after: at)...]

        var userPart = userInfo
        var passwordPart: Substring?
        if let colon = userInfo.firstIndex(of: ":") {
            userPart = userInfo[..<colon]
            passwordPart = userInfo[userInfo.index(after: colon)...]
        }
        guard let user = String(userPart).removingPercentEncoding, !user.isEmpty else {
            throw refuse("names no user (the part before @)")
        }
        let password = try passwordPart.map { part throws(LinliError) -> String in
            guard let decoded = String(part).removingPercentEncoding else { throw refuse("has a password with a broken %-escape") }
            return decoded
        }

        var host: Substring
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            // An IPv6 address: [::1]:5432.
            guard let close = hostPort.firstIndex(of: "]") else { throw refuse("has a [ without ] around its host address") }
            host = hostPort[hostPort.index(after: hostPort.startIndex) ..< close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw refuse("has something other than :PORT after its host address") }
                portText = after.dropFirst()
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = hostPort
        }
        guard !host.isEmpty else { throw refuse("names no host (between @ and the port or /)") }
        guard host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":" || $0 == "_" }) else {
            throw refuse("names the host \"\(host)\", which is not a host name or address")
        }
        var port = Self.defaultPort
        if let portText {
            guard let number = Int(portText), (1 ... 65_535).contains(number) else {
                throw refuse("names the port \"\(portText)\"; a port is a number from 1 to 65535")
            }
            port = number
        }
        guard !path.isEmpty else { throw refuse("names no database (the part after the last /)") }
        guard !path.contains("/"), let database = String(path).removingPercentEncoding, !database.isEmpty else {
            throw refuse("names the database \"\(path)\"; a database name is one word after the host")
        }

        var tls = TLSMode.prefer
        for parameter in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = pair[0]
            let value = pair.count > 1 ? String(pair[1]) : ""
            guard key == "sslmode" else {
                throw refuse("has the parameter \"\(key)\", which Linli does not know; only sslmode is read")
            }
            guard let mode = TLSMode(rawValue: value) else {
                throw refuse("has sslmode=\(value); it is disable, prefer or require")
            }
            tls = mode
        }
        self.init(user: user, password: password, host: String(host), port: port, database: database, tls: tls)
    }

    /// The URL, with the password shown as `***`.
    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let credentials = password == nil ? user : "\(user):***"
        let mode = tls == .prefer ? "" : "?sslmode=\(tls.rawValue)"
        return "postgres://\(credentials)@\(shownHost):\(port)/\(database)\(mode)"
    }

    /// The text as given with its password, if any, replaced by `***`, to
    /// quote it in an error.
    static func redacted(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else { return "\"\(text)\"" }
        let afterScheme = text[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else {
            return "\"\(text)\""
        }
        return "\"\(text[..<authority.index(after: colon)])***\(text[at...])\""
    }
}
