import ArgumentParser
import Foundation
import LinliCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads a PIN or passphrase from the terminal without echo.
///
/// `getpass(3)` turns the terminal's signal keys off, so Ctrl-C typed at
/// its prompt became a character of the PIN, and the Enter after it a
/// wrong PIN that counted towards the lockout. This reader sees Ctrl-C
/// (and Ctrl-D on an empty line) itself and cancels: nothing is tried,
/// nothing is counted, the terminal is put back as it was. Backspace and
/// Ctrl-U edit the line; Enter ends it.
public enum SecretPrompt {
    /// What a person did instead of typing a secret.
    public struct Cancelled: Error {}

    static let interrupt: UInt8 = 0x03, endOfFile: UInt8 = 0x04, erase: UInt8 = 0x7F, backspace: UInt8 = 0x08, killLine: UInt8 = 0x15

    /// The secret typed after `prompt`, or nil when standard input is not a
    /// terminal. Throws ``Cancelled`` on Ctrl-C or Ctrl-D.
    public static func read(_ prompt: String) throws -> String? {
        guard isatty(STDIN_FILENO) != 0 else { return nil }
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { return nil }
        var raw = saved
        // No echo, no line editing by the terminal, no signal keys: each
        // byte comes here as typed, Ctrl-C included.
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | ISIG)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw)
        defer {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        var typed: [UInt8] = []
        while true {
            var byte: UInt8 = 0
            let count = Glibc.read(STDIN_FILENO, &byte, 1)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { throw Cancelled() }
            switch byte {
            case interrupt:
                throw Cancelled()
            case endOfFile where typed.isEmpty:
                throw Cancelled()
            case UInt8(ascii: "\r"), UInt8(ascii: "\n"):
                return String(decoding: typed, as: UTF8.self)
            case erase, backspace:
                // One character, however many bytes of UTF-8 it took.
                while let last = typed.popLast(), last & 0xC0 == 0x80 {}
            case killLine:
                typed.removeAll()
            default:
                guard typed.count < Limits.secretBytesMax else { continue }
                typed.append(byte)
            }
        }
    }

    /// A secret chosen now: asked twice, and again while the two differ
    /// (at most three times). Nil when standard input is not a terminal.
    public static func choose(_ prompt: String, again: String = "再输入一次 the same again: ", minimumLength: Int = 4) throws -> String? {
        for _ in 0..<3 {
            guard let first = try read(prompt) else { return nil }
            guard first.count >= minimumLength else {
                printError("至少 \(minimumLength) 个字符 · at least \(minimumLength) characters; try again")
                continue
            }
            guard let second = try read(again) else { return nil }
            if first == second { return first }
            printError("两次输入不一致 · the two do not match; try again")
        }
        throw LinliError(.invalidInput, "no PIN or passphrase was chosen: the entries did not match three times", hint: "run the command again")
    }

    /// Says that the command was cancelled and ends it: exit 130, as for
    /// an interrupted program, with nothing changed.
    public static func cancelled() -> ExitCode {
        printError("已取消，没有改动任何数据 · cancelled; nothing was changed")
        return ExitCode(130)
    }
}
