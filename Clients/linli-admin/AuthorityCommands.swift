import ArgumentParser
import Foundation
import LinliCore
import LinliCrypto
import LinliProtocol
import LinliStore

struct AuthorityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authority", abstract: "Create or rotate the trust authority.", subcommands: [Init.self, Rotate.self, Show.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the authority key (sealed with a passphrase) and print the public key every replica is configured with.")
        @OptionGroup var options: AuthorityOptions
        @Option(help: "The administrator's name, recorded in the trust records.") var administrator = "administrator"
        @Option(help: "The sync server's address as devices will reach it, e.g. https://linli.example.gov.cn: written into every enrolment bundle (a device can change it later with `linli server URL`).")
        var server: String
        @Option(help: "Argon2id strength for the sealed key: moderate (256 MiB) or interactive (64 MiB).") var kdf = "moderate"

        func validate() throws {
            guard ["moderate", "interactive"].contains(kdf) else { throw ValidationError("--kdf takes moderate or interactive") }
            guard let url = URL(string: server), url.scheme == "https" || url.scheme == "http", !(url.host ?? "").isEmpty else {
                throw ValidationError("--server takes the address devices will reach the server at, https://HOST[:PORT], not \(server)")
            }
        }

        func run() throws {
            try guarded {
                if FileManager.default.fileExists(atPath: options.settingsPath) {
                    throw LinliError(.invalidInput, "\(options.directory) already holds an authority; refusing to replace it",
                                     hint: "use another --dir, or `authority rotate` to change its key")
                }
                let passphrase = try options.passphrase(prompt: "new authority passphrase (at least 12 characters): ", choosing: true)
                guard passphrase.count >= 12 else {
                    throw LinliError(.invalidInput, "an authority passphrase needs at least 12 characters")
                }
                try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
                let key = SigningKey.generate()
                let device = Authority.deviceID(root: key.publicKey)
                try SealedKeyFile.write(try SealedKey.seal(key, passphrase: passphrase, label: "Linli authority",
                                                           strength: kdf == "moderate" ? .moderate : .interactive), to: options.keyPath)
                _ = try ReplicaStore(path: options.replicaPath, schema: AuthoritySettings.schema, authority: key.publicKey)
                try AuthoritySettings(rootPublicKey: key.publicKey.hex, currentPublicKey: key.publicKey.hex, device: device.hex,
                                      administrator: administrator, server: server, rotations: 0).write(to: options.settingsPath)
                emit(options.json, ["authority_public_key": key.publicKey.hex, "authority_device": device.hex, "dir": options.directory],
                     text: "authority created in \(options.directory)\nroot public key (configure every replica with it):\n\(key.publicKey.hex)")
            }
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace the authority key: a statement signed by the old and the new key; field work goes on.")
        @OptionGroup var options: AuthorityOptions
        @Option(help: "A file whose first line is the new passphrase (default: the current one).") var newPassphraseFile: String?

        func run() throws {
            try guarded {
                let (store, identity, settings) = try options.open()
                let newPassphrase = try newPassphraseFile.map { try Passphrase.read(file: $0, prompt: "") } ?? options.passphrase()
                let previous = try SealedKey.seal(identity.key, passphrase: newPassphrase, label: "Linli authority (before rotation \(settings.rotations + 1))",
                                                  strength: .moderate)
                let next = SigningKey.generate()
                let sealed = try SealedKey.seal(next, passphrase: newPassphrase, label: "Linli authority", strength: .moderate)
                let (made, _) = try store.rotateAuthority(as: identity, to: next)
                // Keep the old sealed key; the new one replaces it atomically.
                var updated = settings
                updated.rotations += 1
                try FileManager.default.copyItem(atPath: options.keyPath, toPath: options.keyPath + ".\(updated.rotations - 1)")
                try SealedKeyFile.write(sealed, to: options.keyPath)
                // Kept for `sync`: the server authenticates the authority by
                // the old key until the rotation's change set reaches it.
                try SealedKeyFile.write(previous, to: options.previousKeyPath)
                updated.currentPublicKey = next.publicKey.hex
                try updated.write(to: options.settingsPath)
                emit(options.json, ["new_public_key": next.publicKey.hex, "valid_from_seq": made[0].header.seq + 1],
                     text: "authority key rotated; the new key signs from the authority's change set \(made[0].header.seq + 1)\n\(next.publicKey.hex)")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the authority's keys and what it has issued.")
        @OptionGroup var options: AuthorityOptions

        func run() throws {
            try guarded {
                let settings = try options.settings()
                let store = try options.replica(settings)
                let records = try store.changeSets(scopes: [.system]).count
                emit(options.json, ["root_public_key": settings.rootPublicKey, "current_public_key": settings.currentPublicKey,
                                    "authority_device": settings.device, "trust_change_sets": records, "rotations": settings.rotations],
                     text: "root key     \(settings.rootPublicKey)\ncurrent key  \(settings.currentPublicKey)\ndevice       \(settings.device)\ntrust records \(records) change sets, \(settings.rotations) rotations")
            }
        }
    }
}

struct GridCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "grid", abstract: "The register of grids devices may be enrolled for.",
                                                    subcommands: [Add.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a grid.")
        @OptionGroup var options: AuthorityOptions
        @Argument(help: "The grid id: ASCII letters, digits, - _ .") var id: String
        @Option(help: "The grid's name, e.g. 幸福社区第三网格.") var label = ""

        func run() throws {
            try guarded {
                _ = try options.settings()
                guard Scope.isValidGridName(id) else {
                    throw LinliError(.invalidInput, "\"\(id)\" is not a grid id: use 1 to 64 ASCII letters, digits, - _ or .")
                }
                var grids = try options.grids()
                if let index = grids.firstIndex(where: { $0.id == id }) { grids[index].label = label } else { grids.append(GridEntry(id: id, label: label)) }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
                try AtomicFile.write(try encoder.encode(grids.sorted { $0.id < $1.id }), to: options.gridsPath)
                emit(options.json, ["grid": id, "label": label], text: "grid \(id) registered")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the registered grids.")
        @OptionGroup var options: AuthorityOptions

        func run() throws {
            try guarded {
                let grids = try options.grids()
                emit(options.json, ["grids": grids.map { ["id": $0.id, "label": $0.label] }],
                     text: grids.map { "\($0.id)\t\($0.label)" }.joined(separator: "\n"))
            }
        }
    }
}
