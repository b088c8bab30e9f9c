// Package qrcode draws QR codes of links as SVG and PNG images of a given
// size in pixels. The symbol itself is encoded by github.com/piglig/go-qr
// (a port of Nayuki's reference generator); this package only lays it out.
package qrcode

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strconv"

	goqr "github.com/piglig/go-qr"
)

// Quiet is the light margin around the symbol, in modules, that the
// standard asks for (ISO/IEC 18004: four modules).
const Quiet = 4

// Sizes, in pixels, that Code draws.
const (
	MinSize     = 64
	MaxSize     = 2048
	DefaultSize = 256
)

// Code is the QR code of one text, at error correction level M (15% of
// the symbol can be lost, a smudge or a crease on a printed card).
type Code struct {
	qr *goqr.QrCode
}

// New encodes text.
func New(text string) (*Code, error) {
	qr, err := goqr.EncodeText(text, goqr.Medium)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %q as a QR code: %w", text, err)
	}
	return &Code{qr: qr}, nil
}

// Modules is the width of the image in modules: the symbol and its quiet
// zone.
func (c *Code) Modules() int { return c.qr.Size() + 2*Quiet }

// CheckSize returns an error unless an image of size pixels can be drawn:
// within MinSize and MaxSize, and at least two pixels per module, below
// which phone cameras misread codes.
func (c *Code) CheckSize(size int) error {
	if size < MinSize || size > MaxSize {
		return fmt.Errorf("size %d is out of range: want %d to %d pixels", size, MinSize, MaxSize)
	}
	if min := 2 * c.Modules(); size < min {
		return fmt.Errorf("size %d is too small for this code (%d modules with its quiet zone): want at least %d pixels", size, c.Modules(), min)
	}
	return nil
}

// PNG draws the code as a size x size PNG, black on white. Modules are
// whole pixels; what does not divide evenly widens the quiet zone.
func (c *Code) PNG(size int) ([]byte, error) {
	if err := c.CheckSize(size); err != nil {
		return nil, err
	}
	n := c.qr.Size()
	scale := size / c.Modules()
	off := (size - scale*n) / 2
	img := image.NewPaletted(image.Rect(0, 0, size, size), color.Palette{color.White, color.Black})
	for y := range n {
		for x := range n {
			if !c.qr.Module(x, y) {
				continue
			}
			for py := off + y*scale; py < off+(y+1)*scale; py++ {
				row := img.Pix[py*img.Stride:]
				for px := off + x*scale; px < off+(x+1)*scale; px++ {
					row[px] = 1
				}
			}
		}
	}
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, img); err != nil {
		return nil, fmt.Errorf("cannot encode PNG: %w", err)
	}
	return b.Bytes(), nil
}

// SVG draws the code as an SVG document of size x size pixels, black on
// white, one path of the dark modules in module units.
func (c *Code) SVG(size int) ([]byte, error) {
	if err := c.CheckSize(size); err != nil {
		return nil, err
	}
	n, m := c.qr.Size(), strconv.Itoa(c.Modules())
	s := strconv.Itoa(size)
	b := make([]byte, 0, 512+n*n*4)
	b = append(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="`...)
	b = append(b, s+`" height="`+s+`" viewBox="0 0 `+m+" "+m+`" shape-rendering="crispEdges">`+"\n"...)
	b = append(b, `<rect width="100%" height="100%" fill="#ffffff"/>`+"\n"+`<path fill="#000000" d="`...)
	for y := range n {
		for x := 0; x < n; {
			if !c.qr.Module(x, y) {
				x++
				continue
			}
			run := 1
			for x+run < n && c.qr.Module(x+run, y) {
				run++
			}
			// One rectangle per run of dark modules in a row.
			b = append(b, 'M')
			b = strconv.AppendInt(b, int64(x+Quiet), 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(y+Quiet), 10)
			b = append(b, 'h')
			b = strconv.AppendInt(b, int64(run), 10)
			b = append(b, "v1h-"...)
			b = strconv.AppendInt(b, int64(run), 10)
			b = append(b, 'z')
			x += run
		}
	}
	b = append(b, `"/>`+"\n</svg>\n"...)
	return b, nil
}
