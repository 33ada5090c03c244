import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A program run on a pseudo-terminal, as a person at a terminal runs it:
/// keystrokes in (``type(_:)``), the screen out (``screen``). Standard
/// input, output and error are the terminal's side, so the program sees a
/// terminal (`isatty`), sets its modes, and gets Ctrl-C as the byte a
/// keyboard sends.
public final class PseudoTerminal: @unchecked Sendable {
    public let process = Process()
    private let controller: FileHandle
    private let lock = NSLock()
    private var output = Data()

    /// Starts `executable` with `arguments` on a new pseudo-terminal.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        // posix_openpt and its friends are not in Swift's Glibc module; these
        // are what they do on Linux: open the multiplexer, unlock the new
        // terminal (TIOCSPTLCK) and ask its number (TIOCGPTN).
        let primary = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        guard primary >= 0 else { throw TerminalError("cannot open /dev/ptmx: \(String(cString: strerror(errno)))") }
        var unlock: CInt = 0
        var number: CInt = 0
        guard ioctl(primary, 0x4004_5431, &unlock) == 0, ioctl(primary, 0x8004_5430, &number) == 0 else {
            close(primary)
            throw TerminalError("cannot unlock a pseudo-terminal: \(String(cString: strerror(errno)))")
        }
        let name = "/dev/pts/\(number)"
        let secondary = open(name, O_RDWR | O_NOCTTY)
        guard secondary >= 0 else {
            close(primary)
            throw TerminalError("cannot open \(name): \(String(cString: strerror(errno)))")
        }
        controller = FileHandle(fileDescriptor: primary, closeOnDealloc: true)
        let terminal = FileHandle(fileDescriptor: secondary, closeOnDealloc: true)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("LINLI_") }
        merged["TERM"] = "xterm"
        merged.merge(environment) { $1 }
        process.environment = merged
        process.standardInput = terminal
        process.standardOutput = terminal
        process.standardError = terminal
        try process.run()
        // The program holds the terminal's side now; the reader ends when
        // it has ended (a read of the controller fails once no one has the
        // terminal open).
        try terminal.close()
        Thread { [self] in readAll() }.start()
    }

    private func readAll() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(controller.fileDescriptor, &buffer, buffer.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { return }
            lock.withLock { output.append(contentsOf: buffer[0..<count]) }
        }
    }

    /// Everything the program has written so far, as text.
    public var screen: String { lock.withLock { String(decoding: output, as: UTF8.self) } }

    /// Sends keystrokes: text as typed, `"\r"` for Enter, `"\u{03}"` for Ctrl-C.
    public func type(_ keys: String) {
        controller.write(Data(keys.utf8))
    }

    /// How often the screen is looked at while waiting, in seconds.
    static let pollSeconds = 0.02

    /// Waits until the screen shows `text` (after `from` characters of it),
    /// looking at most `seconds` worth of times; throws with the screen
    /// when it does not. The limit counts looks, not the clock: in a test
    /// process whose threads are all busy a task may not run for minutes,
    /// and a clock deadline would pass before the first look.
    @discardableResult
    public func waitFor(_ text: String, after from: Int = 0, seconds: Double = 60) async throws -> Int {
        for _ in 0...Int(seconds / Self.pollSeconds) {
            let shown = screen
            let start = shown.index(shown.startIndex, offsetBy: min(from, shown.count))
            if let range = shown.range(of: text, range: start..<shown.endIndex) {
                return shown.distance(from: shown.startIndex, to: range.upperBound)
            }
            if !process.isRunning {
                // Whatever it wrote before it ended has been read by now, or soon.
                try await Task.sleep(nanoseconds: 200_000_000)
                if screen.range(of: text, range: screen.index(screen.startIndex, offsetBy: min(from, screen.count))..<screen.endIndex) == nil {
                    throw TerminalError("the program ended (status \(process.terminationStatus)) without showing \(text); its screen:\n\(screen)")
                }
                continue
            }
            try await Task.sleep(nanoseconds: UInt64(Self.pollSeconds * 1e9))
        }
        throw TerminalError("no \(text) on the screen within \(seconds) s of looking; its screen:\n\(screen)")
    }

    /// Waits for the program to end, looking at most `seconds` worth of
    /// times (as ``waitFor(_:after:seconds:)``), and returns its status.
    public func exitStatus(seconds: Double = 60) async throws -> Int32 {
        for _ in 0...Int(seconds / Self.pollSeconds) {
            if !process.isRunning { return process.terminationStatus }
            try await Task.sleep(nanoseconds: UInt64(Self.pollSeconds * 1e9))
        }
        process.terminate()
        throw TerminalError("the program did not end within \(seconds) s of looking; its screen:\n\(screen)")
    }
}

/// Why a pseudo-terminal could not be used.
public struct TerminalError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
