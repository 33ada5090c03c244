import ArgumentParser
import Foundation

/// What a field client tells the shared commands about itself.
public protocol FieldProgram {
    /// Its name in messages (`linli`, `linli-kiosk`).
    static var name: String { get }
    /// How long `unlock` keeps the key when not told: a working session
    /// for an inspector, a day for a kiosk.
    static var unlockDefault: String { get }
    static var unlockAbstract: String { get }
}

/// `unlock`: the key unsealed once for a working session (``SessionKey``).
public struct UnlockCommand<Program: FieldProgram>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "unlock", abstract: Program.unlockAbstract,
            discussion: """
                The unsealed key is kept in memory-backed storage readable by this user only ($XDG_RUNTIME_DIR, else \
                /dev/shm), until --for has passed (at most 16 h) or `lock`; docs/SECURITY.md says what that protects against.
                """)
    }
    @OptionGroup var device: DeviceOptions
    @Option(name: .customLong("for"), help: "How long: 8h, 90m, 45s (default \(Program.unlockDefault)).") var duration = Program.unlockDefault

    public init() {}

    public func run() async throws {
        try await guarded(Program.name) { print(try SessionKey.unlock(device, for: duration)) }
    }
}

/// `lock`: the unlocked copy of the key wiped now.
public struct LockCommand<Program: FieldProgram>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "lock", abstract: "Lock this device's key now: the unlocked copy is wiped, the PIN is asked again.")
    }
    @OptionGroup var device: DeviceOptions

    public init() {}

    public func run() async throws {
        try await guarded(Program.name) { print(try SessionKey.lock(device)) }
    }
}
