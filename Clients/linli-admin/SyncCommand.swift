import ArgumentParser
import Foundation
import LinliClient
import LinliCore
import LinliCrypto
import LinliStore

/// `linli-admin sync`: sends the authority's trust records (certificates,
/// revocations, key rotations) to the server, and takes what the server
/// has. Devices learn of a new certificate or a revocation from the server
/// only after this.
struct SyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync", abstract: "Send the authority's trust records to the server (after enrolling, rotating or revoking).")

    @OptionGroup var options: AuthorityOptions
    @Option(help: "The server, e.g. https://linli.example.gov.cn or http://127.0.0.1:8080.") var server: String
    @Option(help: "PEM file of the certificate authority of the server's TLS certificate (default: the system's).") var caFile: String?

    func run() async throws {
        try await guardedAsync {
            guard let client = try options.open(server: server, caFile: caFile).client else { return }
            let report = try await client.sync()
            emit(options.json, ["pushed": report.pushed, "accepted": report.accepted, "refused": report.refused, "pulled": report.pulled],
                 text: "sent \(report.pushed) trust records to \(server): \(report.accepted) accepted, \(report.refused.count) refused; pulled \(report.pulled)"
                    + report.refused.map { "\n  refused: \($0)" }.joined())
            if !report.refused.isEmpty { throw ExitCode(1) }
        }
    }
}
