import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small W3C WebDriver client that drives a headless Chromium through
/// `chromedriver`, for tests of the web pages: open a page, find elements
/// by CSS selector, type, click, press keys, read text and cookies, take a
/// screenshot.
///
/// `start()` launches `chromedriver` on a free loopback port with a fresh
/// profile in a temporary folder; `quit()` ends the session and every
/// process it started. Forgetting `quit()` still ends the processes when
/// the driver is released, only less politely.
///
/// The commands go over plain HTTP/1.1 on loopback (`LoopbackHTTP`), not
/// URLSession: FoundationNetworking in Swift 6.3 rejects chromedriver's
/// answers, whose header lines have no space after the colon
/// (`Content-Length:249`), with "Failed writing header".
///
///     let browser = try await WebDriver.start()
///     try await browser.open("http://127.0.0.1:8080/staff")
///     try await browser.find("#user").sendKeys("zhang")
///     try await browser.pressKeys(WebDriver.Key.tab + "2468" + WebDriver.Key.enter)
///     await browser.quit()
public final class WebDriver: Sendable {
    /// The WebDriver session id.
    public let sessionID: String
    /// Where chromedriver listens, `http://127.0.0.1:PORT`.
    public var endpoint: URL { server.endpoint }
    /// The temporary folder of this browser: profile, chromedriver's log,
    /// Chromium's caches. Every process Chromium starts names it on its
    /// command line; `quit()` removes it.
    public var folder: URL { server.folder }
    private let server: ChromeDriverProcess

    private init(sessionID: String, server: ChromeDriverProcess) {
        self.sessionID = sessionID
        self.server = server
    }

    deinit {
        // Without `quit()`: no session to delete politely, but no process
        // may outlive the driver either.
        server.kill()
    }

    /// Whether the default `chromedriver` and `chromium` executables are
    /// installed (Debian's `chromium-driver` and `chromium`; `make deps`).
    public static var isAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium")
    }

    // MARK: Starting and stopping

    /// Launches `chromedriver` on a free loopback port, waits until it is
    /// ready and opens a session with a headless Chromium of the given
    /// window size, a fresh profile and no network use of its own
    /// (no updates, sync, safe browsing or proxy). The size is the
    /// window's: headless Chromium keeps room for its toolbars, so the
    /// page's viewport is shorter (1280 × 757 for 1280 × 900).
    public static func start(chromedriver: String = "/usr/bin/chromedriver", chromium: String = "/usr/bin/chromium",
                             windowWidth: Int = 1280, windowHeight: Int = 900) async throws -> WebDriver {
        for (path, package) in [(chromedriver, "chromium-driver"), (chromium, "chromium")]
        where !FileManager.default.isExecutableFile(atPath: path) {
            throw WebDriverError(command: "start", message: "\(path) is not an executable; install \(package) (make deps)")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("linli-webdriver-\(UUID().uuidString)")
        let profile = folder.appendingPathComponent("profile")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)

        // A free port may be taken between asking and chromedriver binding
        // it; then try another.
        var server: ChromeDriverProcess?
        var lastError: (any Error)?
        for _ in 0..<3 where server == nil {
            let candidate: ChromeDriverProcess
            do {
                candidate = try ChromeDriverProcess(executable: chromedriver, port: try freeLoopbackPort(), folder: folder)
            } catch {
                lastError = error
                continue
            }
            do {
                try await waitUntilReady(candidate, timeout: .seconds(20))
                server = candidate
            } catch {
                candidate.kill(removingFolder: false)
                lastError = error
            }
        }
        guard let server else {
            try? FileManager.default.removeItem(at: folder)
            throw lastError ?? WebDriverError(command: "start", message: "chromedriver did not start")
        }

        let arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=\(windowWidth),\(windowHeight)", "--user-data-dir=\(profile.path)",
            // Nothing leaves the machine: no first-run pages, updates,
            // sync, safe browsing, translation, metrics or proxies.
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
            "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--disable-breakpad",
            "--disable-features=Translate,OptimizationHints,MediaRouter,SafeBrowsing", "--no-pings",
            "--no-proxy-server", "--password-store=basic", "--use-mock-keychain", "--mute-audio",
        ]
        let capabilities: JSON = [
            "capabilities": [
                "alwaysMatch": [
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": ["implicit": 0, "pageLoad": 30_000, "script": 30_000],
                    "goog:chromeOptions": ["binary": .string(chromium), "args": .array(arguments.map(JSON.string))],
                ],
            ],
        ]
        do {
            let created = try await send(port: server.port, "POST", "/session", body: capabilities, command: "POST /session")
            guard let id = created["sessionId"]?.string else {
                throw WebDriverError(command: "POST /session", message: "the answer has no sessionId: \(created)")
            }
            return WebDriver(sessionID: id, server: server)
        } catch var error as WebDriverError {
            error.message += server.logTail().map { "\nchromedriver said:\n\($0)" } ?? ""
            server.kill()
            throw error
        } catch {
            server.kill()
            throw error
        }
    }

    /// Ends the session (Chromium closes) and stops chromedriver; any
    /// process of theirs still running is killed, and the temporary profile
    /// is removed. Calling it again does nothing.
    public func quit() async {
        guard server.beginQuit() else { return }
        _ = try? await Self.send(port: server.port, "DELETE", "/session/\(sessionID)", body: nil,
                                 command: "DELETE /session", timeout: 15)
        server.kill()
    }

    // MARK: Navigation

    /// Navigates to `url` and waits for the page to load.
    public func open(_ url: String) async throws {
        _ = try await command("POST", "/url", ["url": .string(url)])
    }

    /// The URL of the current page.
    public func currentURL() async throws -> String {
        try await string("GET", "/url")
    }

    /// The title of the current page.
    public func title() async throws -> String {
        try await string("GET", "/title")
    }

    /// The current page's DOM, serialised as HTML.
    public func pageSource() async throws -> String {
        try await string("GET", "/source")
    }

    // MARK: Elements

    /// The first element matching the CSS selector; throws an error naming
    /// the selector when there is none.
    public func find(_ css: String) async throws -> WebElement {
        do {
            return try element(try await command("POST", "/element", ["using": "css selector", "value": .string(css)]))
        } catch let error as WebDriverError where error.error == "no such element" {
            let page = (try? await currentURL()) ?? "the current page"
            throw WebDriverError(command: "POST /element", status: error.status, error: error.error,
                                 message: "no element matches the CSS selector \"\(css)\" on \(page)")
        }
    }

    /// Every element matching the CSS selector, in document order; empty
    /// when there is none.
    public func findAll(_ css: String) async throws -> [WebElement] {
        let found = try await command("POST", "/elements", ["using": "css selector", "value": .string(css)])
        guard case .array(let items) = found else {
            throw WebDriverError(command: "POST /elements", message: "expected a list of elements, got \(found)")
        }
        return try items.map(element)
    }

    /// Waits until an element matches the CSS selector (for pages that
    /// change after a script or a request runs), polling every 100 ms.
    public func waitFor(_ css: String, timeout: Duration = .seconds(5)) async throws -> WebElement {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let first = try await findAll(css).first { return first }
            guard ContinuousClock.now < deadline else {
                let page = (try? await currentURL()) ?? "the current page"
                throw WebDriverError(command: "POST /elements", error: "no such element",
                                     message: "no element matched the CSS selector \"\(css)\" on \(page) within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The element that has the keyboard focus (the body when none has).
    public func activeElement() async throws -> WebElement {
        try element(try await command("GET", "/element/active"))
    }

    // MARK: Keyboard

    /// Special keys for `pressKeys` and `WebElement.sendKeys`, as the
    /// WebDriver specification numbers them.
    public enum Key {
        public static let backspace = "\u{E003}"
        public static let tab = "\u{E004}"
        public static let enter = "\u{E007}"
        public static let shift = "\u{E008}"
        public static let control = "\u{E009}"
        public static let alt = "\u{E00A}"
        public static let escape = "\u{E00C}"
        public static let space = "\u{E00D}"
        public static let pageUp = "\u{E00E}"
        public static let pageDown = "\u{E00F}"
        public static let end = "\u{E010}"
        public static let home = "\u{E011}"
        public static let left = "\u{E012}"
        public static let up = "\u{E013}"
        public static let right = "\u{E014}"
        public static let down = "\u{E015}"
        public static let delete = "\u{E017}"
        public static let meta = "\u{E03D}"

        static let modifiers: Set<Character> = ["\u{E008}", "\u{E009}", "\u{E00A}", "\u{E03D}"]
    }

    /// Types `keys` into whatever has the focus, as a person at a keyboard
    /// does: each character is pressed and released in turn. A modifier
    /// (`Key.shift`, `.control`, `.alt`, `.meta`) stays held until the end,
    /// so `Key.shift + Key.tab` moves the focus backwards.
    public func pressKeys(_ keys: String) async throws {
        var actions: [JSON] = []
        var held: [String] = []
        for character in keys {
            let key = String(character)
            actions.append(["type": "keyDown", "value": .string(key)])
            if Key.modifiers.contains(character) {
                held.append(key)
            } else {
                actions.append(["type": "keyUp", "value": .string(key)])
            }
        }
        for key in held.reversed() { actions.append(["type": "keyUp", "value": .string(key)]) }
        _ = try await command("POST", "/actions",
                              ["actions": [["type": "key", "id": "keyboard", "actions": .array(actions)]]])
        _ = try await command("DELETE", "/actions")
    }

    // MARK: Cookies

    /// A cookie of the current page's site.
    public struct Cookie: Sendable, Equatable {
        public let name: String
        public let value: String
        public let path: String?
        public let domain: String?
        public let httpOnly: Bool
        public let secure: Bool
    }

    /// The cookies visible to the current page.
    public func cookies() async throws -> [Cookie] {
        guard case .array(let items) = try await command("GET", "/cookie") else {
            throw WebDriverError(command: "GET /cookie", message: "expected a list of cookies")
        }
        return items.compactMap { item in
            guard let name = item["name"]?.string, let value = item["value"]?.string else { return nil }
            return Cookie(name: name, value: value, path: item["path"]?.string, domain: item["domain"]?.string,
                          httpOnly: item["httpOnly"]?.bool ?? false, secure: item["secure"]?.bool ?? false)
        }
    }

    /// Sets a cookie for the current page's site (a page of it must be open).
    public func addCookie(name: String, value: String) async throws {
        _ = try await command("POST", "/cookie", ["cookie": ["name": .string(name), "value": .string(value)]])
    }

    /// Deletes every cookie visible to the current page.
    public func deleteAllCookies() async throws {
        _ = try await command("DELETE", "/cookie")
    }

    // MARK: Screenshots

    /// A PNG of the current viewport.
    public func screenshot() async throws -> Data {
        let encoded = try await string("GET", "/screenshot")
        guard let png = Data(base64Encoded: encoded) else {
            throw WebDriverError(command: "GET /screenshot", message: "the screenshot is not valid base64")
        }
        return png
    }

    /// Writes a PNG of the current viewport to `url`, making its folder.
    public func saveScreenshot(to url: URL) async throws {
        let png = try await screenshot()
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try png.write(to: url, options: .atomic)
    }

    // MARK: The protocol

    /// Sends a command of this session: `path` is relative to
    /// `/session/{id}`. Returns the answer's `value`.
    func command(_ method: String, _ path: String, _ body: JSON? = nil) async throws -> JSON {
        guard !server.isFinished else {
            throw WebDriverError(command: "\(method) \(path)", message: "the session has ended (quit)")
        }
        return try await Self.send(port: server.port, method, "/session/\(sessionID)\(path)",
                                   body: body ?? (method == "POST" ? .object([:]) : nil), command: "\(method) \(path)")
    }

    func string(_ method: String, _ path: String) async throws -> String {
        let value = try await command(method, path)
        guard let string = value.string else {
            throw WebDriverError(command: "\(method) \(path)", message: "expected a string, got \(value)")
        }
        return string
    }

    private static let elementKey = "element-6066-11e4-a52e-4f735466cecf"

    private func element(_ value: JSON) throws -> WebElement {
        guard let id = value[Self.elementKey]?.string else {
            throw WebDriverError(command: "element", message: "expected an element reference, got \(value)")
        }
        return WebElement(id: id, driver: self)
    }

    private static func send(port: Int, _ method: String, _ path: String, body: JSON?,
                             command: String, timeout: TimeInterval = 60) async throws -> JSON {
        var payload: Data?
        if let body {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .withoutEscapingSlashes
            payload = try encoder.encode(body)
        }
        let status: Int
        let data: Data
        do {
            (status, data) = try await LoopbackHTTP.exchange(port: port, method: method, path: path, body: payload,
                                                             timeout: timeout)
        } catch {
            throw WebDriverError(command: command, message: "no answer from chromedriver on 127.0.0.1:\(port): \(error)")
        }
        let answer = try? JSONDecoder().decode(JSON.self, from: data)
        let value = answer?["value"]
        if let code = value?["error"]?.string {
            // chromedriver appends "(Session info: …)" lines; the first line says what failed.
            let message = value?["message"]?.string?.split(separator: "\n").first.map(String.init) ?? ""
            throw WebDriverError(command: command, status: status, error: code, message: message)
        }
        guard (200..<300).contains(status), let value else {
            throw WebDriverError(command: command, status: status,
                                 message: "unexpected answer: \(String(decoding: data.prefix(500), as: UTF8.self))")
        }
        return value
    }

    private static func waitUntilReady(_ server: ChromeDriverProcess, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard server.isRunning else {
                throw WebDriverError(command: "GET /status", message: "chromedriver (\(server.executable)) exited before it was ready"
                                     + (server.logTail().map { ":\n\($0)" } ?? ""))
            }
            if let status = try? await send(port: server.port, "GET", "/status", body: nil, command: "GET /status", timeout: 2),
               status["ready"]?.bool == true {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw WebDriverError(command: "GET /status",
                             message: "chromedriver (\(server.executable)) was not ready on \(server.endpoint.absoluteString) within \(timeout)"
                                 + (server.logTail().map { ":\n\($0)" } ?? ""))
    }

    /// A port on 127.0.0.1 that nothing listens on now.
    private static func freeLoopbackPort() throws -> Int {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        defer { _ = close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard bound == 0, named == 0 else { throw POSIXError(.EADDRNOTAVAIL) }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// An element of the page, found by `WebDriver.find`. It stays valid while
/// its node is in the document; after a reload, find it again.
public struct WebElement: Sendable {
    /// The WebDriver element id.
    public let id: String
    /// The driver whose page holds the element.
    public let driver: WebDriver

    /// Scrolls the element into view and clicks its centre; throws when
    /// something covers it.
    public func click() async throws {
        _ = try await driver.command("POST", "/element/\(id)/click")
    }

    /// Focuses the element and types `text` into it; `WebDriver.Key`
    /// values press special keys.
    public func sendKeys(_ text: String) async throws {
        _ = try await driver.command("POST", "/element/\(id)/value", ["text": .string(text)])
    }

    /// Empties an input or text area.
    public func clear() async throws {
        _ = try await driver.command("POST", "/element/\(id)/clear")
    }

    /// The text as rendered (hidden parts left out).
    public func text() async throws -> String {
        try await driver.string("GET", "/element/\(id)/text")
    }

    /// The HTML attribute `name` as written in the document; nil when absent.
    public func attribute(_ name: String) async throws -> String? {
        try await driver.command("GET", "/element/\(id)/attribute/\(Self.escaped(name))").text
    }

    /// The DOM property `name` (such as `value` or `checked`) as text; nil
    /// when undefined or null.
    public func property(_ name: String) async throws -> String? {
        try await driver.command("GET", "/element/\(id)/property/\(Self.escaped(name))").text
    }

    /// The element's tag name, lower case for HTML.
    public func tagName() async throws -> String {
        try await driver.string("GET", "/element/\(id)/name")
    }

    private static func escaped(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_.:"))) ?? name
    }
}

/// A failed WebDriver command: which one, the HTTP status, and what
/// chromedriver answered (its `error` code and `message`).
public struct WebDriverError: Error, CustomStringConvertible, Sendable {
    /// The command, such as `POST /element`, relative to the session.
    public var command: String
    /// The HTTP status of the answer, if there was one.
    public var status: Int?
    /// The WebDriver error code, such as `no such element`.
    public var error: String?
    /// What went wrong, in words.
    public var message: String

    public init(command: String, status: Int? = nil, error: String? = nil, message: String) {
        self.command = command
        self.status = status
        self.error = error
        self.message = message
    }

    public var description: String {
        var parts = ["WebDriver \(command) failed"]
        if let status { parts.append("HTTP \(status)") }
        if let error { parts.append(error) }
        return parts.joined(separator: ", ") + ": " + message
    }
}

/// A JSON value, as WebDriver sends and receives them.
enum JSON: Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .number(Double(value)) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(arrayLiteral elements: JSON...) { self = .array(elements) }
    init(dictionaryLiteral elements: (String, JSON)...) { self = .object(Dictionary(elements) { $1 }) }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSON].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15 { try container.encode(Int64(value)) } else { try container.encode(value) }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    subscript(key: String) -> JSON? {
        if case .object(let fields) = self { return fields[key] }
        return nil
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The value as text: strings as they are, numbers and booleans
    /// written out, nil for null, anything else as JSON.
    var text: String? {
        switch self {
        case .null: return nil
        case .string(let value): return value
        default: return description
        }
    }

    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return String(value)
        case .number(let value): return value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .string(let value): return value
        case .array, .object:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
        }
    }
}

/// Sends `number` to a process, or to a process group when `pid` is negative.
private func sendSignal(_ pid: pid_t, _ number: Int32) {
    _ = kill(pid, number)
}

/// The chromedriver process, its temporary folder (profile and log), and
/// every process it starts: its own process group, and any process whose
/// command line names the folder (Chromium and its helpers).
final class ChromeDriverProcess: @unchecked Sendable {
    let executable: String
    let port: Int
    let endpoint: URL
    let folder: URL
    private let process = Process()
    private let log: FileHandle
    private let logURL: URL
    private let lock = NSLock()
    private var quitting = false
    private var stopped = false

    init(executable: String, port: Int, folder: URL) throws {
        self.executable = executable
        self.folder = folder
        self.port = port
        endpoint = URL(string: "http://127.0.0.1:\(port)")!
        logURL = folder.appendingPathComponent("chromedriver-\(port).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        log = try FileHandle(forWritingTo: logURL)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--port=\(port)"]
        // Chromium starts its crash handler whatever the flags, with its
        // database under $XDG_CONFIG_HOME; in the folder, the handler
        // leaves no files behind and its command line names the folder.
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = folder.appendingPathComponent("config").path
        environment["XDG_CACHE_HOME"] = folder.appendingPathComponent("cache").path
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        // Foundation starts the child in a process group of its own, which
        // Chromium joins: kill() ends the group.
        do {
            try process.run()
        } catch {
            try? log.close()
            throw WebDriverError(command: "start", message: "could not run \(executable): \(error)")
        }
    }

    var isRunning: Bool { process.isRunning }

    /// Whether `quit()` began or the processes were killed.
    var isFinished: Bool { lock.withLock { quitting || stopped } }

    /// The last lines chromedriver and Chromium wrote, for error messages.
    func logTail(lines: Int = 20) -> String? {
        guard let data = try? Data(contentsOf: logURL), !data.isEmpty else { return nil }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// True the first time: the caller then quits politely.
    func beginQuit() -> Bool {
        lock.withLock {
            defer { quitting = true }
            return !quitting && !stopped
        }
    }

    /// Kills chromedriver, its process group and every process using the
    /// folder, at once; removes the folder. SIGKILL, because a child of
    /// Foundation's `Process` on Linux starts with almost every signal
    /// blocked, SIGTERM included; Chromium has already closed when the
    /// session was deleted.
    func kill(removingFolder: Bool = true) {
        let first = lock.withLock {
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        let group = process.processIdentifier
        if group > 0 { sendSignal(-group, SIGKILL) }
        // Chromium's helpers may leave the group; they still name the folder.
        for _ in 0..<50 {
            let left = Self.processes(naming: folder.path)
            if left.isEmpty { break }
            for pid in left { sendSignal(pid, SIGKILL) }
            usleep(20_000)
        }
        try? log.close()
        if removingFolder { try? FileManager.default.removeItem(at: folder) }
    }

    /// The live processes whose command line contains `text` (zombies have
    /// none, so they do not count).
    static func processes(naming text: String) -> [pid_t] {
        #if os(Linux)
        let needle = Data(text.utf8)
        let own = getpid()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), pid != own,
                  let handle = FileHandle(forReadingAtPath: "/proc/\(entry)/cmdline") else { return nil }
            defer { try? handle.close() }
            let cmdline = handle.readDataToEndOfFile()
            return cmdline.range(of: needle) != nil ? pid : nil
        }
        #else
        return []
        #endif
    }
}

/// One HTTP/1.1 exchange with a server on 127.0.0.1, on a connection of its
/// own: enough for chromedriver, whose answers always carry a
/// Content-Length (it says `Connection:close` but keeps the socket open, so
/// the answer ends by its length, not by the peer closing).
enum LoopbackHTTP {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Sends the request and returns the status and body; the blocking
    /// socket calls run on a dispatch thread, not the cooperative pool.
    static func exchange(port: Int, method: String, path: String, body: Data?,
                         timeout: TimeInterval) async throws -> (status: Int, body: Data) {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result {
                    try exchangeBlocking(port: port, method: method, path: path, body: body, timeout: timeout)
                })
            }
        }
    }

    static func exchangeBlocking(port: Int, method: String, path: String, body: Data?,
                                 timeout: TimeInterval) throws -> (status: Int, body: Data) {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let noSignal = Int32(MSG_NOSIGNAL)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        let noSignal: Int32 = 0
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { _ = close(fd) }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect: \(String(cString: strerror(errno)))") }

        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: application/json\r\n"
        if let body {
            request += "Content-Type: application/json; charset=utf-8\r\nContent-Length: \(body.count)\r\n"
        }
        var bytes = Data((request + "\r\n").utf8)
        if let body { bytes.append(body) }
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, noSignal) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            sent += count
        }

        var answer = Data()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var head: (status: Int, length: Int?, bodyStart: Int)?
        while true {
            if let head, let length = head.length, answer.count - head.bodyStart >= length { break }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            if count < 0 {
                let reason = errno == EAGAIN || errno == EWOULDBLOCK ? "no answer within \(Int(timeout)) s" : String(cString: strerror(errno))
                throw Failure(description: "recv: \(reason)")
            }
            if count == 0 { break }  // closed: the body is what came
            answer.append(contentsOf: buffer[0..<count])
            if head == nil, let end = answer.firstRange(of: Data("\r\n\r\n".utf8)) {
                head = try parseHead(answer[answer.startIndex..<end.lowerBound], bodyStart: end.upperBound - answer.startIndex)
            }
        }
        guard let head else { throw Failure(description: "the answer ended before its headers did") }
        var body = Data(answer.dropFirst(head.bodyStart))
        if let length = head.length {
            guard body.count >= length else { throw Failure(description: "the answer ended \(length - body.count) bytes short") }
            body = body.prefix(length)
        }
        return (head.status, body)
    }

    /// The status and Content-Length of an answer's head. Header lines are
    /// split at the first colon with optional white space either side.
    static func parseHead(_ head: Data, bodyStart: Int) throws -> (status: Int, length: Int?, bodyStart: Int) {
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/"), let status = Int(statusParts[1]) else {
            throw Failure(description: "not an HTTP answer: \(lines.first ?? "")")
        }
        var length: Int?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "content-length" { length = Int(value) }
            if name == "transfer-encoding", value.lowercased() != "identity" {
                throw Failure(description: "transfer encoding \(value) is not supported")
            }
        }
        return (status, length, bodyStart)
    }
}
