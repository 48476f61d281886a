"""Writes the Nonin DF2/DF7 hex fixtures beside this file (run it to regenerate).

Built from the frame layouts in shared/protocols/monitor-protocols.md section 3: DF2
`0x01 STATUS PLETH DATA CHK`, DF7 `STATUS PLETH_MSB PLETH_LSB DATA CHK`, CHK = sum of the
first four bytes mod 256, 25 frames per packet, SYNC = STATUS bit0, DATA by frame index
(1 HR MSB, 2 HR LSB, 3 SpO2, 4 firmware revision). Sentinels: HR 511, SpO2 127.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def packet(fmt: str, hr: int, spo2: int, status: int = 0, pleth0: int = 40) -> list[bytes]:
    frames = []
    for i in range(25):
        data = {0: (hr >> 7) & 0x03, 1: hr & 0x7F, 2: spo2 & 0x7F, 3: 0x2A}.get(i, 0)
        st = 0x80 | status | (0x01 if i == 0 else 0)
        pleth = (pleth0 + 7 * i) & 0xFFFF
        if fmt == "df2":
            head = bytes([0x01, st, pleth & 0xFF, data])
        else:
            head = bytes([st, (pleth >> 8) & 0xFF, pleth & 0xFF, data])
        frames.append(head + bytes([sum(head) & 0xFF]))
    return frames


def write(name: str, comment: str, frames: list[bytes]) -> None:
    lines = [f"# {line}" for line in comment.strip().splitlines()]
    lines += [" ".join(f"{b:02x}" for b in frame) for frame in frames]
    (HERE / name).write_text("\n".join(lines) + "\n")


def main() -> None:
    for fmt in ("df2", "df7"):
        tail = packet(fmt, 70, 98)[15:]  # the end of a packet already under way
        write(
            f"{fmt}_normal.hex",
            f"Nonin {fmt.upper()}: 10 frames of a packet in progress (skipped), then\n"
            "HR 72 SpO2 97, then HR 130 (MSB 1, LSB 2) SpO2 95 with red perfusion (low).",
            tail + packet(fmt, 72, 97) + packet(fmt, 130, 95, status=0x04),
        )
        write(
            f"{fmt}_sentinels.hex",
            f"Nonin {fmt.upper()}: HR 511 / SpO2 127 with sensor disconnect (0x40);\n"
            "then out of track (0x10) with numbers; then artifact (0x20) + green and red\n"
            "perfusion (marginal) with HR 88 SpO2 93.",
            packet(fmt, 511, 127, status=0x40)
            + packet(fmt, 80, 96, status=0x10)
            + packet(fmt, 88, 93, status=0x26),
        )
        bad = packet(fmt, 75, 96)
        bad[10] = bad[10][:4] + bytes([(bad[10][4] + 1) & 0xFF])
        write(
            f"{fmt}_checksum_and_missed.hex",
            f"Nonin {fmt.upper()}: a packet whose frame 11 has a bad checksum (rejected),\n"
            "a packet cut short after 12 frames by a new SYNC (missed data),\n"
            "then a good packet HR 76 SpO2 99.",
            bad + packet(fmt, 77, 97)[:12] + packet(fmt, 76, 99),
        )


if __name__ == "__main__":
    main()
