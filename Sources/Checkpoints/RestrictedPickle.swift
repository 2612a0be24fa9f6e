import Foundation

/// A value of a restricted pickle: plain data, and the few torch/numpy objects a `torch.save` of
/// tensors needs, built natively. Lists and dicts are reference types because the pickle memo
/// shares them.
public indirect enum PickleValue: @unchecked Sendable {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// `torch.Size(...)`.
    case size([Int])
    /// A persistent storage reference: its torch storage type, archive key and element count.
    case storage(type: String, key: String, count: Int)
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`.
    case tensor(storageType: String, key: String, storageCount: Int, offset: Int, size: [Int], stride: [Int])
    /// `numpy.dtype(...)` (only its type code is kept).
    case numpyDType(String)
    /// A global the reader allows, before it is called.
    case global(String)

    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .size: return "torch.Size"
        case .storage: return "storage"
        case .tensor: return "tensor"
        case .numpyDType: return "numpy.dtype"
        case let .global(g): return g
        }
    }
}

public final class PickleList: @unchecked Sendable { public var items: [PickleValue] = [] }
public final class PickleDict: @unchecked Sendable {
    public var items: [(key: PickleValue, value: PickleValue)] = []
    /// The value of a string key (the last one set).
    public subscript(_ key: String) -> PickleValue? {
        items.last { if case let .string(k) = $0.key { return k == key } else { return false } }?.value
    }
}

/// A pickle reader that never executes code (pickle protocols 2–4, the opcodes `torch.save`
/// emits). It interprets a fixed set of globals natively: `torch.Size`, `collections.OrderedDict`,
/// `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter`, the `torch.*Storage` types of
/// persistent ids, `numpy.dtype`, `numpy.core.multiarray.scalar` (and `numpy._core`), and
/// `_codecs.encode` (how protocol 2 spells bytes). Any other global, any other opcode, and any
/// call of an allowed global with arguments of the wrong kind is refused with the offset, so a
/// hostile file can at worst be rejected. Stack, memo and marks are bounded by the input size.
public enum RestrictedPickle {
    public struct Failure: Error, Equatable, CustomStringConvertible, Sendable {
        public let path: String
        public let offset: Int
        public let reason: String
        public var description: String { "\(path): pickle at byte \(offset): \(reason)" }
    }

    static let storageTypes = ["FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage", "LongStorage", "IntStorage"]
    static let allowedGlobals: Set<String> = Set(
        ["torch.Size", "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
         "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "_codecs.encode"]
        + storageTypes.map { "torch." + $0 })

    public static func load(_ bytes: UnsafeRawBufferPointer, path: String) throws -> PickleValue {
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]
        var pos = 0
        var opStart = 0
        func fail(_ reason: String) -> Failure { Failure(path: path, offset: opStart, reason: reason) }
        func take(_ n: Int) throws -> UnsafeRawBufferPointer {
            guard n >= 0, pos + n <= bytes.count else { throw fail("truncated (needs \(n) more bytes)") }
            defer { pos += n }
            return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])
        }
        func uint(_ n: Int) throws -> Int { try take(n).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } }
        func pop() throws -> PickleValue {
            guard let v = stack.popLast() else { throw fail("stack underflow") }
            if let m = marks.last, stack.count < m { throw fail("stack underflow past a mark") }
            return v
        }
        func popMark() throws -> [PickleValue] {
            guard let m = marks.popLast() else { throw fail("no mark") }
            defer { stack.removeSubrange(m...) }
            return Array(stack[m...])
        }
        func text(_ raw: UnsafeRawBufferPointer) throws -> String {
            guard let s = String(bytes: raw, encoding: .utf8) else { throw fail("a string is not UTF-8") }
            return s
        }
        func line() throws -> String {
            guard let nl = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("GLOBAL without a newline") }
            let s = try text(UnsafeRawBufferPointer(rebasing: bytes[pos..<nl]))
            pos = nl + 1
            return s
        }
        func global(_ module: String, _ name: String) throws -> PickleValue {
            let g = module + "." + name
            guard allowedGlobals.contains(g) else {
                throw fail("global \(g) is not allowed (this reader never executes pickled code; it knows only tensors, torch.Size, OrderedDict and numpy integer scalars)")
            }
            return .global(g)
        }
        while true {
            opStart = pos
            let op = try uint(1)
            switch op {
            case 0x80: _ = try uint(1)                                   // PROTO
            case 0x95: _ = try take(8)                                   // FRAME
            case 0x2E: guard stack.count == 1, marks.isEmpty else { throw fail("STOP with \(stack.count) values on the stack") }   // STOP
                return stack[0]
            case 0x7D: stack.append(.dict(PickleDict()))                 // EMPTY_DICT
            case 0x5D: stack.append(.list(PickleList()))                 // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                          // EMPTY_TUPLE
            case 0x28: marks.append(stack.count)                         // MARK
            case 0x4E: stack.append(.none)                               // NONE
            case 0x88: stack.append(.bool(true))                         // NEWTRUE
            case 0x89: stack.append(.bool(false))                        // NEWFALSE
            case 0x4B: stack.append(.int(Int64(try uint(1))))            // BININT1
            case 0x4D: stack.append(.int(Int64(try uint(2))))            // BININT2
            case 0x4A: stack.append(.int(Int64(Int32(truncatingIfNeeded: try uint(4)))))   // BININT
            case 0x8A:                                                   // LONG1
                let n = try uint(1)
                guard n <= 8 else { throw fail("LONG1 of \(n) bytes does not fit 64 bits") }
                let raw = try take(n)
                var v: UInt64 = 0
                for (i, x) in raw.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
                if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }   // sign-extend
                stack.append(.int(Int64(bitPattern: v)))
            case 0x47:                                                   // BINFLOAT (big-endian)
                let raw = try take(8)
                stack.append(.float(Double(bitPattern: raw.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
            case 0x58: stack.append(.string(try text(try take(try uint(4)))))   // BINUNICODE
            case 0x8C: stack.append(.string(try text(try take(try uint(1)))))   // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try text(try take(try uint(8)))))   // BINUNICODE8
            case 0x42: stack.append(.bytes(Array(try take(try uint(4)))))       // BINBYTES
            case 0x43: stack.append(.bytes(Array(try take(try uint(1)))))       // SHORT_BINBYTES
            case 0x71, 0x72, 0x94:                                       // BINPUT, LONG_BINPUT, MEMOIZE
                let k = op == 0x94 ? memo.count : try uint(op == 0x71 ? 1 : 4)
                guard let top = stack.last else { throw fail("memoizing an empty stack") }
                memo[k] = top
            case 0x68, 0x6A:                                             // BINGET, LONG_BINGET
                let k = try uint(op == 0x68 ? 1 : 4)
                guard let v = memo[k] else { throw fail("memo key \(k) was never set") }
                stack.append(v)
            case 0x74: stack.append(.tuple(try popMark()))               // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))                 // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))            // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))   // TUPLE3
            case 0x61, 0x65:                                             // APPEND, APPENDS
                let items = op == 0x61 ? [try pop()] : try popMark()
                guard case let .list(l)? = stack.last else { throw fail("APPEND to a \(stack.last?.kind ?? "nothing")") }
                l.items += items
            case 0x73, 0x75:                                             // SETITEM, SETITEMS
                let items: [PickleValue]
                if op == 0x73 { let v = try pop(), k = try pop(); items = [k, v] } else { items = try popMark() }
                guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of values") }
                guard case let .dict(d)? = stack.last else { throw fail("SETITEM on a \(stack.last?.kind ?? "nothing")") }
                for i in stride(from: 0, to: items.count, by: 2) { d.items.append((items[i], items[i + 1])) }
            case 0x63:                                                   // GLOBAL
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93:                                                   // STACK_GLOBAL
                guard case let .string(name) = try pop(), case let .string(module) = try pop() else { throw fail("STACK_GLOBAL needs two strings") }
                stack.append(try global(module, name))
            case 0x51:                                                   // BINPERSID
                guard case let .tuple(t) = try pop(), t.count == 5, case .string("storage") = t[0], case let .global(type) = t[1],
                      case let .string(key) = t[2], case let .int(n) = t[4], n >= 0, storageTypes.map({ "torch." + $0 }).contains(type) else {
                    throw fail("a persistent id that is not ('storage', torch.<T>Storage, key, location, count)")
                }
                stack.append(.storage(type: String(type.dropFirst(6)), key: key, count: Int(n)))
            case 0x52:                                                   // REDUCE
                let args = try pop(), callable = try pop()
                guard case let .global(g) = callable, case let .tuple(a) = args else { throw fail("REDUCE of a \(callable.kind) on a \(args.kind)") }
                stack.append(try call(g, a, fail))
            case 0x62:                                                   // BUILD
                let state = try pop()
                guard case .numpyDType = stack.last, case let .tuple(s) = state, s.count >= 2, case let .string(order) = s[1] else {
                    throw fail("BUILD is only allowed on numpy.dtype")
                }
                guard order == "<" || order == "|" else { throw fail("numpy dtype byte order \"\(order)\" (only little-endian is read)") }
            default:
                throw fail(String(format: "opcode 0x%02X is not supported by the restricted reader", op))
            }
        }
    }

    /// The native meaning of an allowed global called with `a`.
    static func call(_ g: String, _ a: [PickleValue], _ fail: (String) -> Failure) throws -> PickleValue {
        func ints(_ v: PickleValue) -> [Int]? {
            guard case let .tuple(t) = v else { return nil }
            var out: [Int] = []
            for x in t { guard case let .int(i) = x, i >= 0 else { return nil }; out.append(Int(i)) }
            return out
        }
        switch g {
        case "torch.Size":
            guard a.count == 1, let dims = ints(a[0]) else { throw fail("torch.Size needs a tuple of non-negative ints") }
            return .size(dims)
        case "collections.OrderedDict":
            guard a.isEmpty else { throw fail("OrderedDict with arguments") }
            return .dict(PickleDict())
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case let .storage(type, key, count) = a[0], case let .int(offset) = a[1], offset >= 0,
                  let size = ints(a[2]), let stride = ints(a[3]), size.count == stride.count else {
                throw fail("_rebuild_tensor_v2 needs (storage, offset, size, stride, ...)")
            }
            return .tensor(storageType: type, key: key, storageCount: count, offset: Int(offset), size: size, stride: stride)
        case "torch._utils._rebuild_parameter":
            guard a.count >= 1, case .tensor = a[0] else { throw fail("_rebuild_parameter needs a tensor") }
            return a[0]
        case "numpy.dtype":
            guard a.count >= 1, case let .string(code) = a[0] else { throw fail("numpy.dtype needs a type code") }
            return .numpyDType(code)
        case "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar":
            guard a.count == 2, case let .numpyDType(code) = a[0], case let .bytes(raw) = a[1] else { throw fail("numpy scalar needs (dtype, bytes)") }
            let width = ["i8": 8, "i4": 4, "u4": 4, "i2": 2, "u2": 2, "i1": 1, "u1": 1][code]
            guard let width, raw.count == width else { throw fail("numpy scalar of dtype \(code) (\(raw.count) bytes): only integer scalars are read") }
            var v: UInt64 = 0
            for (i, x) in raw.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
            if code.hasPrefix("i"), width < 8, raw[width - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(width)) }
            guard code != "u8" else { throw fail("numpy uint64 scalar") }
            return .int(Int64(bitPattern: v))
        case "_codecs.encode":
            guard a.count == 2, case let .string(s) = a[0], case .string("latin1") = a[1] else { throw fail("_codecs.encode needs (str, \"latin1\")") }
            var out: [UInt8] = []
            for u in s.unicodeScalars {
                guard u.value <= 0xFF else { throw fail("_codecs.encode: a character above U+00FF in latin1 bytes") }
                out.append(UInt8(u.value))
            }
            return .bytes(out)
        default:
            throw fail("\(g) cannot be called")
        }
    }
}
