package apitest

import (
	"io"

	"github.com/agnesdata/agnes/server/internal/config"
)

type configT = config.Config

var ioEOF = io.EOF
