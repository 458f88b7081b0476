/*
 * Authored by Alex Hultman, 2018-2026.
 * Intellectual property of third-party.

 * Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at

 *     http://www.apache.org/licenses/LICENSE-2.0

 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

#ifndef UWS_CHUNKEDENCODING_H
#define UWS_CHUNKEDENCODING_H

/* Independent chunked encoding parser, used by HttpParser. */

#include <string>
#include <cstring>
#include <cstdlib>
#include <algorithm>
#include <string_view>
#include "MoveOnlyFunction.h"
#include <optional>

namespace uWS {

    /* Kiln: a strict decoder (RFC 9112 7.1). Upstream's skipped whatever followed a chunk
     * size up to a bare LF, never checked the CRLF after chunk data, took the two bytes after
     * the last chunk as its CRLF (a trailer's bytes were then parsed as the next request) and
     * let sizes wrap. A proxy that reads a body's end differently from the server behind it or
     * the one in front of it splits or joins requests (request smuggling), so every byte of
     * the framing is checked here and anything else is an error (400, connection closed).
     *
     * The state stays one uint64_t (HttpParser's remainingStreamingBytes): bit 62 is set
     * while a chunked body is being read, bits 56-61 hold the phase, bits 0-55 a count (the
     * chunk size while reading it, the data bytes left, the trailer bytes seen). ~0 is an
     * error; 0 means the body has ended (the last chunk and the trailer section are in). */
    constexpr uint64_t STATE_IS_CHUNKED = 1ull << 62;
    constexpr uint64_t STATE_SIZE_MASK = ~(3ull << 62);
    constexpr uint64_t STATE_IS_ERROR = ~0ull;
    constexpr uint64_t STATE_COUNT_MASK = (1ull << 56) - 1;
    constexpr int STATE_PHASE_SHIFT = 56;

    /* Phases: where in the chunked framing the next byte falls. */
    enum : uint64_t {
        CHUNK_SIZE_START = 0, /* first hex digit of a chunk size */
        CHUNK_SIZE,           /* more hex digits, or BWS / ";" / CR */
        CHUNK_SIZE_BWS,       /* whitespace after the size: only ";" may follow */
        CHUNK_EXT,            /* chunk extensions up to CR (ignored) */
        CHUNK_SIZE_LF,        /* LF ending the size line */
        CHUNK_DATA,           /* count bytes of data */
        CHUNK_DATA_CR,        /* CR after the data */
        CHUNK_DATA_LF,        /* LF after the data */
        CHUNK_TRAILER_START,  /* start of a trailer field line, or the final CR */
        CHUNK_TRAILER_NAME,   /* trailer field name up to ":" */
        CHUNK_TRAILER_VALUE,  /* trailer field value up to CR */
        CHUNK_TRAILER_LF,     /* LF ending a trailer field line */
        CHUNK_END_LF          /* LF ending the message */
    };

    /* Sizes past this are refused (overflow); no real body comes near 2^44 bytes in one chunk. */
    constexpr uint64_t CHUNK_SIZE_LIMIT_SHIFT = 44;
    /* Trailer fields are read and dropped; a trailer section past this is refused. */
    constexpr uint64_t CHUNK_TRAILER_LIMIT = 16 * 1024;

    inline uint64_t chunkSize(uint64_t state) {
        return state & STATE_SIZE_MASK;
    }

    inline uint64_t chunkPhase(uint64_t state) {
        return (state >> STATE_PHASE_SHIFT) & 63;
    }

    inline uint64_t chunkState(uint64_t phase, uint64_t count) {
        return STATE_IS_CHUNKED | (phase << STATE_PHASE_SHIFT) | count;
    }

    /* Are we in the middle of parsing chunked encoding? */
    inline bool isParsingChunkedEncoding(uint64_t state) {
        return state & ~STATE_SIZE_MASK;
    }

    inline bool isParsingInvalidChunkedEncoding(uint64_t state) {
        return state == STATE_IS_ERROR;
    }

    inline int hexValue(unsigned char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    /* RFC 9110 5.6.2 tchar */
    inline bool isTokenByte(unsigned char c) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
        switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
        case '-': case '.': case '^': case '_': case '`': case '|': case '~':
            return true;
        default:
            return false;
        }
    }

    /* Field value and chunk extension bytes: visible ASCII, SP, HTAB and obs-text; no CTL. */
    inline bool isValueByte(unsigned char c) {
        return c == '\t' || (c >= 32 && c != 127);
    }

    /* Returns the next piece of body data (never empty), an empty view once the message has
     * ended (its last chunk and trailer section consumed: state is then 0), or nullopt when
     * all input was consumed or on error (state is then STATE_IS_ERROR). Stops right after
     * the message's last byte: what follows belongs to the next request. */
    static std::optional<std::string_view> getNextChunk(std::string_view &data, uint64_t &state, bool /*trailer*/ = false) {
        if (!(state & STATE_IS_CHUNKED) || state == STATE_IS_ERROR) {
            return std::nullopt;
        }
        uint64_t phase = chunkPhase(state);
        uint64_t count = state & STATE_COUNT_MASK;
        while (data.length()) {
            if (phase == CHUNK_DATA) {
                size_t n = (size_t) std::min<uint64_t>(count, data.length());
                std::string_view piece = data.substr(0, n);
                data.remove_prefix(n);
                count -= n;
                state = chunkState(count ? CHUNK_DATA : CHUNK_DATA_CR, count);
                return piece;
            }
            unsigned char c = (unsigned char) data[0];
            data.remove_prefix(1);
            switch (phase) {
            case CHUNK_SIZE_START:
            case CHUNK_SIZE: {
                int v = hexValue(c);
                if (v >= 0) {
                    if (count >> CHUNK_SIZE_LIMIT_SHIFT) {
                        state = STATE_IS_ERROR;
                        return std::nullopt;
                    }
                    count = count * 16 + (uint64_t) v;
                    phase = CHUNK_SIZE;
                } else if (phase == CHUNK_SIZE && c == '\r') {
                    phase = CHUNK_SIZE_LF;
                } else if (phase == CHUNK_SIZE && c == ';') {
                    phase = CHUNK_EXT;
                } else if (phase == CHUNK_SIZE && (c == ' ' || c == '\t')) {
                    phase = CHUNK_SIZE_BWS;
                } else {
                    state = STATE_IS_ERROR;
                    return std::nullopt;
                }
                break;
            }
            case CHUNK_SIZE_BWS:
                if (c == ';') {
                    phase = CHUNK_EXT;
                } else if (c != ' ' && c != '\t') {
                    state = STATE_IS_ERROR;
                    return std::nullopt;
                }
                break;
            case CHUNK_EXT:
                if (c == '\r') {
                    phase = CHUNK_SIZE_LF;
                } else if (!isValueByte(c)) {
                    state = STATE_IS_ERROR;
                    return std::nullopt;
                }
                break;
            case CHUNK_SIZE_LF:
                if (c != '\n') {
                    state = STATE_IS_ERROR;
                    return std::nullopt;
                }
                phase = count ? CHUNK_DATA : CHUNK_TRAILER_START;
                break;
            case CHUNK_DATA_CR:
                if (c != '\r') {
                    state = STATE_IS_ERROR;
                    return std::nullopt;
                }
                phase = CHUNK_DATA_LF;
                break;
            case CHUNK_DATA_LF:
                if (c != '\n') {
                    state = STATE_IS_ERROR;
                    return std::nullopt;
                }
                phase = CHUNK_SIZE_START;
                count = 0;
                break;
            default: {
                /* The trailer section: count is the bytes of it seen so far. */
                if (++count > CHUNK_TRAILER_LIMIT) {
                    state = STATE_IS_ERROR;
                    return std::nullopt;
                }
                bool ok = true;
                if (phase == CHUNK_TRAILER_START) {
                    if (c == '\r') phase = CHUNK_END_LF;
                    else if (isTokenByte(c)) phase = CHUNK_TRAILER_NAME;
                    else ok = false;
                } else if (phase == CHUNK_TRAILER_NAME) {
                    if (c == ':') phase = CHUNK_TRAILER_VALUE;
                    else ok = isTokenByte(c);
                } else if (phase == CHUNK_TRAILER_VALUE) {
                    if (c == '\r') phase = CHUNK_TRAILER_LF;
                    else ok = isValueByte(c);
                } else if (phase == CHUNK_TRAILER_LF) {
                    if (c == '\n') phase = CHUNK_TRAILER_START;
                    else ok = false;
                } else if (phase == CHUNK_END_LF && c == '\n') {
                    /* The message has ended. */
                    state = 0;
                    return std::string_view(nullptr, 0);
                } else {
                    ok = false;
                }
                if (!ok) {
                    state = STATE_IS_ERROR;
                    return std::nullopt;
                }
                break;
            }
            }
        }
        state = chunkState(phase, count);
        return std::nullopt;
    }

    /* This is really just a wrapper for convenience */
    struct ChunkIterator {

        std::string_view *data;
        std::optional<std::string_view> chunk;
        uint64_t *state;
        bool trailer;

        ChunkIterator(std::string_view *data, uint64_t *state, bool trailer = false) : data(data), state(state), trailer(trailer) {
            chunk = uWS::getNextChunk(*data, *state, trailer);
        }

        ChunkIterator() {

        }

        ChunkIterator begin() {
            return *this;
        }

        ChunkIterator end() {
            return ChunkIterator();
        }

        std::string_view operator*() {
            if (!chunk.has_value()) {
                std::abort();
            }
            return chunk.value();
        }

        bool operator!=(const ChunkIterator &other) const {
            return other.chunk.has_value() != chunk.has_value();
        }

        ChunkIterator &operator++() {
            chunk = uWS::getNextChunk(*data, *state, trailer);
            return *this;
        }

    };
}

#endif // UWS_CHUNKEDENCODING_H
