// Package mediatest builds the headers of audio files for tests: as much
// of each format as a reader of lengths needs, laid out as the format's
// specification says.
package mediatest

import (
	"bytes"
	"encoding/binary"
)

// MP3CBR is an MPEG-1 Layer III file at 128 kbit/s, 44.1 kHz, of n bytes
// after a 10-byte ID3v2 tag: n×8/128 ms.
func MP3CBR(n int) []byte {
	b := []byte("ID3\x03\x00\x00\x00\x00\x00\x0a")
	b = append(b, make([]byte, 10)...)
	frame := make([]byte, n)
	copy(frame, []byte{0xff, 0xfb, 0x90, 0x64})
	return append(b, frame...)
}

// MP3Xing is an MPEG-1 Layer III stereo file at 44.1 kHz whose Xing
// header counts frames of 1152 samples.
func MP3Xing(frames uint32) []byte {
	b := make([]byte, 417)
	copy(b, []byte{0xff, 0xfb, 0x90, 0x04})
	copy(b[36:], "Xing")
	binary.BigEndian.PutUint32(b[40:], 1)
	binary.BigEndian.PutUint32(b[44:], frames)
	return b
}

// FLAC is a FLAC stream's start: the marker and a STREAMINFO block of
// samples at rate (0 samples: a length the encoder did not know), then
// some frame bytes.
func FLAC(rate int, samples int64) []byte {
	b := []byte("fLaC\x80\x00\x00\x22") // the last block, STREAMINFO, 34 bytes
	si := make([]byte, 34)
	si[10] = byte(rate >> 12)
	si[11] = byte(rate >> 4)
	si[12] = byte(rate<<4) | 0x02 // 2 channels - 1 = 1, high bit of bps
	si[13] = 0xf0 | byte(samples>>32)
	binary.BigEndian.PutUint32(si[14:], uint32(samples))
	return append(append(b, si...), make([]byte, 100)...)
}

// OggPage is one Ogg page of stream serial holding packet (its CRC is
// left zero: readers of lengths do not check it).
func OggPage(serial, seq uint32, granule int64, flags byte, packet []byte) []byte {
	var segs []byte
	n := len(packet)
	for n >= 255 {
		segs = append(segs, 255)
		n -= 255
	}
	segs = append(segs, byte(n))
	var b bytes.Buffer
	b.WriteString("OggS\x00")
	b.WriteByte(flags)
	_ = binary.Write(&b, binary.LittleEndian, uint64(granule))
	_ = binary.Write(&b, binary.LittleEndian, serial)
	_ = binary.Write(&b, binary.LittleEndian, seq)
	b.Write(make([]byte, 4)) // CRC
	b.WriteByte(byte(len(segs)))
	b.Write(segs)
	b.Write(packet)
	return b.Bytes()
}

// Opus is an Ogg Opus file of granule 48 kHz samples after a pre-skip of
// 312, with a page of another stream after its last page.
func Opus(granule int64) []byte {
	head := append([]byte("OpusHead\x01\x01"), 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0) // pre-skip 312, 48 kHz
	b := OggPage(7, 0, 0, 2, head)
	b = append(b, OggPage(7, 1, 0, 0, []byte("OpusTags........"))...)
	b = append(b, OggPage(7, 2, granule/2, 0, make([]byte, 900))...)
	b = append(b, OggPage(7, 3, 312+granule, 4, make([]byte, 600))...)
	return append(b, OggPage(9, 0, 999999999, 4, make([]byte, 30))...)
}

// Vorbis is an Ogg Vorbis file of samples at rate, ending with a page
// that ends no packet (granule position -1).
func Vorbis(rate uint32, samples int64) []byte {
	id := make([]byte, 30)
	copy(id, "\x01vorbis")
	binary.LittleEndian.PutUint32(id[12:], rate)
	b := OggPage(3, 0, 0, 2, id)
	b = append(b, OggPage(3, 1, samples, 4, make([]byte, 2000))...)
	return append(b, OggPage(3, 2, -1, 0, make([]byte, 10))...)
}
