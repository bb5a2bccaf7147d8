#!/usr/bin/python3
"""Hostile and broken data sets for tests/e2e_bad_data.sh, and the seed
corpus of the data fuzz harnesses (tests/fuzz/fuzz_data.c).

    gen_bad_data.py OUT             OUT/<case>/... and OUT/cases.tsv
    gen_bad_data.py --fuzz-seeds D  D/idx, D/cifar, D/image

cases.tsv has one line per case: name, the --data path, the expected exit
status of `onnx-sfp eval` (model 1x28x28, 10 classes, split test), a regular
expression the error line must match, and the path the error line must name
(both paths relative to OUT). Exit 0 cases check that what is merely odd
(non-image files beside the images) still loads.

Only the standard library: PNG, BMP, PGM/PPM, GIF and JPEG bytes are written
by hand (the JPEG is a fixed 8x8 file)."""
import gzip
import os
import shutil
import stat
import struct
import sys
import zlib

# ---------------------------------------------------------------- writers


def idx_images(n, h, w, seed=1, magic=0x00000803):
    body = bytes((i * 7 + seed * 31) % 256 for i in range(n * h * w))
    return struct.pack(">IIII", magic, n, h, w) + body


def idx_labels(labels, magic=0x00000801):
    return struct.pack(">II", magic, len(labels)) + bytes(labels)


def png(w, h, gray=True, rows=None):
    """A valid 8-bit PNG (gray or RGB) of w x h."""
    channels = 1 if gray else 3
    if rows is None:
        rows = [bytes((x * 9 + y * 5 + c) % 256 for x in range(w) for c in range(channels)) for y in range(h)]
    raw = b"".join(b"\0" + r for r in rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if gray else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def bmp(w, h):
    """A 24-bit BMP of w x h."""
    stride = (w * 3 + 3) & ~3
    pixels = b"".join(bytes((x * 11 + y * 3 + c * 50) % 256 for x in range(w) for c in range(3)).ljust(stride, b"\0")
                      for y in range(h))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def pnm(w, h, rgb=False):
    channels = 3 if rgb else 1
    return b"P%d\n%d %d\n255\n" % (6 if rgb else 5, w, h) + bytes((i * 13) % 256 for i in range(w * h * channels))


def gif(w, h):
    """A GIF87a of w x h, 2-colour palette, LZW with clear codes every 4 pixels."""
    codes = []
    for i in range(w * h):
        if i % 4 == 0:
            codes.append(4)  # clear
        codes.append(i % 2)
    codes.append(5)  # end
    bits, n_bits, out = 0, 0, bytearray()
    for c in codes:
        bits |= c << n_bits
        n_bits += 3
        while n_bits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            n_bits -= 8
    if n_bits:
        out.append(bits & 0xFF)
    blocks = b"".join(bytes([len(out[i:i + 255])]) + bytes(out[i:i + 255]) for i in range(0, len(out), 255))
    return (b"GIF87a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff" +
            b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02" + blocks + b"\0;")


# An 8x8 grayscale baseline JPEG (a gradient), as Pillow wrote it at quality 50.
JPEG_8X8 = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616183123251d283a"
    "333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffc0000b080008000801011100ffc4"
    "0014000100000000000000000000000000000001ffc40018100002030000000000000000000000000000030663a1ffda00080101"
    "00003f00110eaf0fffd9")


def gz_bomb(header, zero_bytes):
    """A valid gzip member of header + zero_bytes zeros, about 1/1000 of the
    size: one deflate block of 1 MiB of zeros, byte-aligned and without back
    references into the previous block, repeated."""
    mib = 1 << 20
    assert zero_bytes % mib == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(header) + comp.flush(zlib.Z_FULL_FLUSH)
    zero_block = comp.compress(bytes(mib)) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    zeros = bytes(mib)
    for _ in range(zero_bytes // mib):
        crc = zlib.crc32(zeros, crc)
    size = (len(header) + zero_bytes) & 0xFFFFFFFF
    return (b"\x1f\x8b\x08\x00\0\0\0\0\x00\xff" + head + zero_block * (zero_bytes // mib) + tail +
            struct.pack("<II", crc & 0xFFFFFFFF, size))


# ---------------------------------------------------------------- cases

CASES = []


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def case(name, want, pattern, named, data_path=""):
    """Registers case `name` (folder OUT/name); named and data_path are
    relative to it ("" is the folder itself)."""
    join = lambda p: name + ("/" + p if p else "")
    CASES.append((name, join(data_path), want, pattern, join(named)))


IMG = "t10k-images-idx3-ubyte"
LBL = "t10k-labels-idx1-ubyte"


def idx_case(out, name, images, labels, want, pattern, named, gz=(False, False), data_path=""):
    d = os.path.join(out, name)
    write(os.path.join(d, IMG + (".gz" if gz[0] else "")), images)
    write(os.path.join(d, LBL + (".gz" if gz[1] else "")), labels)
    case(name, want, pattern, named, data_path)


def idx_cases(out):
    good_img, good_lbl = idx_images(20, 28, 28), idx_labels([i % 10 for i in range(20)])
    idx_case(out, "idx_ok", good_img, good_lbl, 0, "", "")
    idx_case(out, "idx_gz_ok", gzip.compress(good_img), gzip.compress(good_lbl), 0, "", "", gz=(True, True))
    idx_case(out, "idx_empty_images", b"", good_lbl, 3, "truncated", IMG)
    idx_case(out, "idx_empty_labels", good_img, b"", 3, "truncated", LBL)
    idx_case(out, "idx_truncated_header", good_img[:10], good_lbl, 3, "truncated in the header", IMG)
    idx_case(out, "idx_truncated_body", good_img[:5000], good_lbl, 3, "truncated", IMG)
    idx_case(out, "idx_truncated_labels", good_img, good_lbl[:15], 3, "truncated", LBL)
    idx_case(out, "idx_trailing_data", good_img + b"\0" * 7, good_lbl, 3, "trailing data", IMG)
    idx_case(out, "idx_wrong_magic", b"\x12\x34" + good_img[2:], good_lbl, 3, "wrong magic", IMG)
    idx_case(out, "idx_labels_wrong_magic", good_img, struct.pack(">I", 0x803) + good_lbl[4:], 3, "wrong magic", LBL)
    idx_case(out, "idx_images_as_labels", good_lbl, good_img, 3, "wrong magic", IMG)
    # 2^31 images of 28x28 declared in a 100-byte file, raw and gzip.
    lie = struct.pack(">IIII", 0x803, 1 << 31, 28, 28) + bytes(84)
    idx_case(out, "idx_count_lie_raw", lie, good_lbl, 3, "header declares .*truncated", IMG)
    idx_case(out, "idx_count_lie_gz", gzip.compress(lie), good_lbl, 3, "gzip bomb",
             IMG + ".gz", gz=(True, False))
    idx_case(out, "idx_dims_overflow", struct.pack(">IIII", 0x803, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), good_lbl, 3,
             "overflows|header declares", IMG)
    idx_case(out, "idx_zero_dim", struct.pack(">IIII", 0x803, 20, 0, 28), good_lbl, 3, "empty dimension", IMG)
    idx_case(out, "idx_side_beyond_limit", idx_images(1, 1, 20000), idx_labels([1]), 3, "pixel limit", IMG)
    idx_case(out, "idx_label_count_lie", good_img, struct.pack(">II", 0x801, 1 << 30) + bytes(20), 3,
             "header declares", LBL)
    # IDX type codes other than 0x08 (unsigned byte): known ones are valid
    # files of a type we do not read (exit 4), unknown ones are broken.
    floats = struct.pack(">IIII", 0x0D03, 20, 28, 28) + bytes(20 * 28 * 28 * 4)
    idx_case(out, "idx_dtype_float", floats, good_lbl, 4, "data type 0x0d .*float32.* not supported", IMG)
    idx_case(out, "idx_dtype_int16_labels", good_img, struct.pack(">II", 0x0B01, 20) + bytes(40), 4,
             "data type 0x0b .*not supported", LBL)
    idx_case(out, "idx_dtype_unknown", struct.pack(">I", 0x0A03) + good_img[4:], good_lbl, 3, "wrong magic", IMG)
    idx_case(out, "idx_count_mismatch", good_img, idx_labels([1] * 19), 3, "holds 20 images but .* 19 labels", IMG)
    idx_case(out, "idx_label_beyond_classes", good_img, idx_labels([3] * 19 + [10]), 3,
             "label 10 of record 19 is beyond the 10 classes", LBL)
    idx_case(out, "idx_label_255", good_img, idx_labels([255] * 20), 3, "label 255 .*beyond", LBL)
    idx_case(out, "idx_corrupt_gz", b"\x1f\x8b\x08\x00\0\0\0\0\0\xff" + bytes(range(200)), gzip.compress(good_lbl),
             3, "corrupt gzip|truncated", IMG + ".gz", gz=(True, True))
    gz_img = gzip.compress(good_img)
    idx_case(out, "idx_gz_truncated", gz_img[:len(gz_img) // 2], good_lbl, 3, "truncated", IMG + ".gz",
             gz=(True, False))
    bad_crc = gz_img[:-8] + struct.pack("<I", (zlib.crc32(good_img) + 1) & 0xFFFFFFFF) + gz_img[-4:]
    idx_case(out, "idx_gz_bad_crc", bad_crc, good_lbl, 3, "corrupt gzip|check", IMG + ".gz", gz=(True, False))
    # A real gzip bomb: a ~3 MB file that inflates to 3 GiB of 28x28 images.
    n = (3 << 30) // 784
    bomb = gz_bomb(struct.pack(">IIII", 0x803, n, 28, 28), (n * 784 + (1 << 20) - 1) >> 20 << 20)
    idx_case(out, "idx_gz_bomb", bomb, gzip.compress(idx_labels([i % 10 for i in range(n)])), 3, "gzip bomb",
             IMG + ".gz", gz=(True, True))
    # The labels file missing; an IDX images file opened alone without labels.
    d = os.path.join(out, "idx_no_labels")
    write(os.path.join(d, IMG), good_img)
    case("idx_no_labels", 3, "no labels", IMG)
    case("idx_no_labels", 3, "no labels", IMG, data_path=IMG)
    # Only the training split is there (eval reads test).
    d = os.path.join(out, "idx_train_only")
    write(os.path.join(d, "train-images-idx3-ubyte"), good_img)
    write(os.path.join(d, "train-labels-idx1-ubyte"), good_lbl)
    case("idx_train_only", 3, "no test split", "")
    # The images file is a folder.
    os.makedirs(os.path.join(out, "idx_images_is_folder", IMG), exist_ok=True)
    write(os.path.join(out, "idx_images_is_folder", LBL), good_lbl)
    case("idx_images_is_folder", 3, "no test split", "")


CIFAR10 = "test_batch.bin"


def cifar_records(labels, fine=None):
    out = b""
    for i, label in enumerate(labels):
        prefix = bytes([label]) if fine is None else bytes([label, fine[i]])
        out += prefix + bytes((j * 3 + i) % 256 for j in range(3072))
    return out


def cifar_cases(out):
    write(os.path.join(out, "cifar_ok", CIFAR10), cifar_records([0, 1, 2, 3]))
    case("cifar_ok", 0, "", "")
    write(os.path.join(out, "cifar_partial_record", CIFAR10), cifar_records([0, 1]) + bytes(100))
    case("cifar_partial_record", 3, "partial record", CIFAR10)
    write(os.path.join(out, "cifar_empty", CIFAR10), b"")
    case("cifar_empty", 3, "empty file", CIFAR10)
    write(os.path.join(out, "cifar_one_byte", CIFAR10), b"\x01")
    case("cifar_one_byte", 3, "partial record", CIFAR10)
    write(os.path.join(out, "cifar_label_beyond", CIFAR10), cifar_records([0, 1, 10]))
    case("cifar_label_beyond", 3, "record 2 has label 10, beyond", CIFAR10)
    write(os.path.join(out, "cifar100_label_beyond_model", "test.bin"), cifar_records([1, 2], fine=[3, 50]))
    case("cifar100_label_beyond_model", 3, "record 1 has label 50, beyond the 10 classes of the model", "test.bin")
    write(os.path.join(out, "cifar_train_only", "data_batch_1.bin"), cifar_records([0, 1]))
    case("cifar_train_only", 3, "none of the test split", "")
    write(os.path.join(out, "cifar_single_file_partial", "x.bin"), cifar_records([0]) + b"\0")
    case("cifar_single_file_partial", 3, "partial record", "x.bin", data_path="x.bin")


def folder_case(out, name, files, want, pattern, named):
    """files: {relative path: bytes}."""
    for rel, data in files.items():
        write(os.path.join(out, name, rel), data)
    case(name, want, pattern, named)


def image_cases(out):
    a, b = png(28, 28), png(30, 20, gray=False)
    folder_case(out, "img_ok", {"cat/1.png": a, "cat/2.bmp": bmp(9, 7), "dog/1.pgm": pnm(28, 28),
                                "dog/2.ppm": pnm(5, 40, rgb=True), "dog/3.gif": gif(6, 6), "dog/4.jpg": JPEG_8X8,
                                "dog/README.txt": b"not an image\n"}, 0, "", "")
    folder_case(out, "img_corrupt_png", {"a/1.png": a, "b/1.png": a[:33] + bytes(range(256)) * 2}, 3,
                "cannot decode|not a readable|PNG chunk", "b/1.png")
    folder_case(out, "img_truncated_png", {"a/1.png": a, "b/1.png": b[:len(b) // 2]}, 3,
                "PNG chunk 'IDAT' at byte 33 declares [0-9]+ bytes, beyond the end", "b/1.png")
    # An IDAT chunk declaring 2 GB in a 60-byte file (stb_image grew its
    # buffer to that size before reading).
    big_idat = a[:33] + struct.pack(">I", 0x7FFFFFF0) + b"IDAT" + bytes(16)
    folder_case(out, "img_png_idat_2gb", {"a/1.png": a, "b/1.png": big_idat}, 3,
                "PNG chunk 'IDAT' .* declares 2147483632 bytes", "b/1.png")
    # A JPEG Huffman table of 654 codes (stb_image 2.27 wrote past its tables).
    dht = JPEG_8X8.index(b"\xff\xc4") + 5
    bad_dht = JPEG_8X8[:dht] + bytes([0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 99, 99, 99, 99, 255]) + JPEG_8X8[dht + 16:]
    # The same JPEG without its AC Huffman table, which the scan still uses
    # (stb_image 2.27 decoded with the uninitialised table).
    ac = JPEG_8X8.index(b"\xff\xc4\x00\x18\x10")
    folder_case(out, "img_jpeg_undefined_table", {"a/1.png": a, "b/1.jpg": JPEG_8X8[:ac] + JPEG_8X8[ac + 26:]}, 3,
                "Huffman table that was never defined", "b/1.jpg")
    folder_case(out, "img_jpeg_huffman_overflow", {"a/1.png": a, "b/1.jpg": bad_dht}, 3,
                "JPEG Huffman table at byte [0-9]+ declares 654 codes", "b/1.jpg")
    # IHDR of 60000x60000 and nothing behind it.
    huge = png(1, 1)
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    huge = huge[:8] + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + \
        huge[33:]
    folder_case(out, "img_png_60000x60000", {"a/1.png": a, "b/1.png": huge}, 3,
                "Very large|declares 60000x60000|not a readable", "b/1.png")
    # 30000x30000 gray in a file within the ratio a PNG can reach: what it
    # declares is 900 MB of pixels.
    folder_case(out, "img_pgm_declares_huge", {"a/1.png": a, "b/1.pgm": b"P5\n30000 30000\n255\n" + bytes(1000)}, 3,
                "declares 30000x30000|cannot decode|not a readable", "b/1.pgm")
    bmp_huge = bytearray(bmp(4, 4))
    struct.pack_into("<ii", bmp_huge, 18, 30000, 30000)
    folder_case(out, "img_bmp_declares_huge", {"a/1.png": a, "b/1.bmp": bytes(bmp_huge)}, 3,
                "declares 30000x30000|cannot decode|not a readable", "b/1.bmp")
    folder_case(out, "img_zero_byte_file", {"a/1.png": a, "b/1.png": b""}, 3, "not a readable|cannot decode", "b/1.png")
    folder_case(out, "img_text_named_png", {"a/1.png": a, "b/notes.png": b"just some text\n" * 10}, 3,
                "not a readable|cannot decode", "b/notes.png")
    folder_case(out, "img_truncated_jpeg", {"a/1.png": a, "b/1.jpg": JPEG_8X8[:120]}, 3,
                "not a readable|cannot decode", "b/1.jpg")
    # stb_image decodes a GIF cut short as far as it goes (reads past the end
    # give zeros), so the broken GIF has an LZW code size beyond 12 bits.
    bad_gif = bytearray(gif(6, 6))
    bad_gif[bad_gif.index(b",") + 10] = 13
    folder_case(out, "img_corrupt_gif", {"a/1.png": a, "b/1.gif": bytes(bad_gif)}, 3,
                "not a readable|cannot decode", "b/1.gif")
    folder_case(out, "img_gif_header_only", {"a/1.png": a, "b/1.gif": gif(6, 6)[:10]}, 3,
                "not a readable|cannot decode", "b/1.gif")
    folder_case(out, "img_empty_class", {"a/1.png": a, "b/README.txt": b"x"}, 3, "holds no images", "b")
    os.makedirs(os.path.join(out, "img_empty_class_folder", "b"), exist_ok=True)
    folder_case(out, "img_empty_class_folder", {"a/1.png": a}, 3, "holds no images", "b")
    folder_case(out, "img_one_class", {"a/1.png": a, "a/2.png": a}, 3, "at least 2 class", "")
    os.makedirs(os.path.join(out, "img_empty_folder"), exist_ok=True)
    case("img_empty_folder", 3, "not a dataset", "")
    folder_case(out, "img_too_many_classes", {"c%02d/1.png" % k: a for k in range(11)}, 3,
                "11 class folders, beyond the 10 classes", "")
    folder_case(out, "img_split_without_test", {"train/a/1.png": a, "train/b/1.png": a}, 3, "no test/ or val/", "")

    # Symbolic links: a file linking to itself, a class folder linking to
    # itself, a class folder linking to the data set (a cycle through the tree).
    folder_case(out, "img_symlink_loop_file", {"a/1.png": a, "b/1.png": a}, 1, "Too many levels|cannot open",
                "b/loop.png")
    os.symlink("loop.png", os.path.join(out, "img_symlink_loop_file", "b", "loop.png"))
    folder_case(out, "img_symlink_loop_folder", {"a/1.png": a, "b/1.png": a}, 1, "Too many levels|cannot open", "c")
    os.symlink("c", os.path.join(out, "img_symlink_loop_folder", "c"))
    folder_case(out, "img_symlink_to_parent", {"a/1.png": a}, 3, "holds no images", "b")
    os.symlink("..", os.path.join(out, "img_symlink_to_parent", "b"))
    folder_case(out, "img_dangling_symlink", {"a/1.png": a, "b/1.png": a}, 1, "cannot open", "b/gone.png")
    os.symlink("nowhere.png", os.path.join(out, "img_dangling_symlink", "b", "gone.png"))
    folder_case(out, "img_fifo", {"a/1.png": a, "b/1.png": a}, 1, "not a regular file", "b/pipe.png")
    os.mkfifo(os.path.join(out, "img_fifo", "b", "pipe.png"))

    # Unreadable entries: root reads them anyway, so these are left out then.
    if os.geteuid() != 0:
        folder_case(out, "img_unreadable_file", {"a/1.png": a, "b/1.png": a}, 1, "Permission denied", "b/1.png")
        os.chmod(os.path.join(out, "img_unreadable_file", "b", "1.png"), 0)
        folder_case(out, "img_unreadable_folder", {"a/1.png": a, "b/1.png": a}, 1, "Permission denied", "b")
        os.chmod(os.path.join(out, "img_unreadable_folder", "b"), 0)


def top_cases(out):
    case("missing_path", 1, "cannot open: No such file", "", data_path="nothing/here")
    write(os.path.join(out, "plain_file", "notes.txt"), b"hello\n")
    case("plain_file", 3, "not a dataset", "notes.txt", data_path="notes.txt")
    os.makedirs(os.path.join(out, "fifo_path"), exist_ok=True)
    os.mkfifo(os.path.join(out, "fifo_path", "data"))
    case("fifo_path", 1, "neither a file nor a folder", "data", data_path="data")


def make_cases(out):
    if os.path.isdir(out):
        for root, dirs, _ in os.walk(out):  # chmod 000 folders of an earlier run
            for d in dirs:
                p = os.path.join(root, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o755)
        shutil.rmtree(out)
    os.makedirs(out)
    idx_cases(out)
    cifar_cases(out)
    image_cases(out)
    top_cases(out)
    with open(os.path.join(out, "cases.tsv"), "w") as f:
        for name, data_path, want, pattern, named in CASES:
            f.write("%s\t%s\t%d\t%s\t%s\n" % (name, data_path, want, pattern, named))
    print("%d cases in %s%s" % (len(CASES), out, " (unreadable-file cases left out: running as root)"
                                if os.geteuid() == 0 else ""))


# ---------------------------------------------------------------- fuzz seeds


def make_fuzz_seeds(out):
    """Seeds in the layout of tests/fuzz/fuzz_data.c (variant byte first)."""
    seeds = {"idx": {}, "cifar": {}, "image": {}}
    img, lbl = idx_images(3, 4, 5), idx_labels([0, 1, 2])
    for flags in (0x00, 0x07, 0x03, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1F):
        i, l = (gzip.compress(img), gzip.compress(lbl)) if flags & 3 == 3 and not flags & 4 else (img, lbl)
        seeds["idx"]["idx_%02x" % flags] = bytes([flags]) + struct.pack("<H", len(i)) + i + l
    seeds["idx"]["idx_28x28"] = b"\x00" + struct.pack("<H", 784 * 2 + 16) + idx_images(2, 28, 28) + idx_labels([4, 9])
    for flags in (0x00, 0x01, 0x02, 0x03, 0x04, 0x08, 0x18, 0x20):
        recs = cifar_records([1, 2], fine=[5, 7] if flags & 1 else None)
        seeds["cifar"]["cifar_%02x" % flags] = bytes([flags]) + recs
    files = {0: png(6, 5), 1: JPEG_8X8, 3: bmp(5, 4), 4: gif(4, 3), 5: pnm(5, 6), 6: pnm(4, 4, rgb=True)}
    for ext, data in files.items():
        for mode in range(4):
            seeds["image"]["image_%d_%d" % (ext, mode)] = bytes([ext | (mode << 5) | ((mode & 1) << 3)]) + data
    seeds["image"]["image_rgb_png"] = bytes([0x48]) + png(40, 30, gray=False)
    for harness, files in seeds.items():
        os.makedirs(os.path.join(out, harness), exist_ok=True)
        for name, data in files.items():
            write(os.path.join(out, harness, name), data)
    print("fuzz seeds in %s" % out)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--fuzz-seeds":
        make_fuzz_seeds(sys.argv[2])
    elif len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        make_cases(sys.argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
