import Foundation
import LinliCore
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive advisory lock (`flock`) on a file, held until
/// ``release()`` or until the process ends, however it ends: the kernel
/// drops it with the descriptor, so a crash leaves no stale lock.
public struct FolderLock: Sendable {
    let descriptor: Int32

    /// Takes the lock on `path` (made when missing), or throws `busy` when
    /// another process holds it.
    public init(path: String, busy: LinliError) throws {
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw LinliError(.storage, "cannot open \(path): \(String(cString: strerror(errno)))", hint: "check the folder's permissions")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(descriptor)
            throw code == EWOULDBLOCK
                ? busy
                : LinliError(.storage, "cannot lock \(path): \(String(cString: strerror(code)))", hint: "check the folder's permissions")
        }
    }

    public func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
