//! An exact port of lodash 4.17.21 `_.startCase`.
//!
//! lodash builds `startCase` with `createCompounder`:
//!
//! ```text
//! words(deburr(string).replace(/['\u2019]/g, ''))
//!     .reduce((result, word, index) => result + (index ? ' ' : '') + upperFirst(word), '')
//! ```
//!
//! Every step is ported by hand below, each function naming the lodash function or regular
//! expression it mirrors. lodash's regular expressions carry no `u` flag, so they match UTF-16
//! code units; this port works on Rust `char`s (code points), which gives the same result for
//! every well-formed string:
//!
//! * every BMP class in lodash is a set of code units that are not surrogates, so it is the
//!   same set of code points;
//! * an astral code point is a surrogate pair, which lodash's `[^\ud800-\udfff]`-style
//!   classes never match and `rsSurrPair` always matches as a whole; no pattern used here can
//!   end a match between the two halves of a valid pair.
//!
//! Lone surrogates cannot occur in a `&str` and are out of scope.
//!
//! JavaScript's `String.prototype.toUpperCase` and Rust's `char::to_uppercase` both apply the
//! locale-independent full Unicode case mapping (e.g. `ß` → `SS`, `ǰ` → `J̌`); for Node 20
//! (ICU 78, Unicode 17) and Rust 1.95 (Unicode 17) they agree on every code point.

use std::ops::Range;

/// Converts `input` to start case, exactly as lodash 4.17.21 `_.startCase(input)` does:
/// Latin-1/Latin Extended-A letters are deburred, combining marks and apostrophes dropped,
/// the string is split into words (`_.words`), each word gets its first symbol upper-cased
/// (`_.upperFirst`) and the words are joined by single spaces.
///
/// `start_case("fooBar")` is `"Foo Bar"`, `start_case("__FOO_BAR__")` is `"FOO BAR"`,
/// `start_case("& ")` is `""`.
pub fn start_case(input: &str) -> String {
    let chars = deburr_without_apostrophes(input);
    let mut out = String::with_capacity(input.len() + 8);
    for (index, range) in words(&chars).into_iter().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        upper_first_into(&chars[range], &mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// deburr + reApos

/// `deburr(string).replace(reApos, '')` (lodash `createCompounder`), as code points.
///
/// `deburr` replaces each `reLatin` letter (`[\xc0-\xd6\xd8-\xf6\xf8-\xff\u0100-\u017f]`) by
/// its `deburredLetters` entry, then removes `reComboMark` (`rsCombo`) marks; `reApos` then
/// removes `'` and `\u2019` (including the one `ŉ` deburrs to).
fn deburr_without_apostrophes(input: &str) -> Vec<char> {
    let mut out = Vec::with_capacity(input.len());
    for c in input.chars() {
        if let Some(letters) = deburr_letter(c) {
            out.extend(letters.chars().filter(|&d| !is_apos(d)));
        } else if !is_combo(c) && !is_apos(c) {
            out.push(c);
        }
    }
    out
}

/// lodash `deburredLetters` (via `deburrLetter`): the basic-Latin replacement for a letter of
/// the Latin-1 Supplement or Latin Extended-A block; `None` for every other character
/// (`×` and `÷` are not in `reLatin`).
fn deburr_letter(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{C0}' | '\u{C1}' | '\u{C2}' | '\u{C3}' | '\u{C4}' | '\u{C5}' | '\u{100}' | '\u{102}'
        | '\u{104}' => "A",
        '\u{C6}' => "Ae",
        '\u{C7}' | '\u{106}' | '\u{108}' | '\u{10A}' | '\u{10C}' => "C",
        '\u{C8}' | '\u{C9}' | '\u{CA}' | '\u{CB}' | '\u{112}' | '\u{114}' | '\u{116}'
        | '\u{118}' | '\u{11A}' => "E",
        '\u{CC}' | '\u{CD}' | '\u{CE}' | '\u{CF}' | '\u{128}' | '\u{12A}' | '\u{12C}'
        | '\u{12E}' | '\u{130}' => "I",
        '\u{D0}' | '\u{10E}' | '\u{110}' => "D",
        '\u{D1}' | '\u{143}' | '\u{145}' | '\u{147}' | '\u{14A}' => "N",
        '\u{D2}' | '\u{D3}' | '\u{D4}' | '\u{D5}' | '\u{D6}' | '\u{D8}' | '\u{14C}' | '\u{14E}'
        | '\u{150}' => "O",
        '\u{D9}' | '\u{DA}' | '\u{DB}' | '\u{DC}' | '\u{168}' | '\u{16A}' | '\u{16C}'
        | '\u{16E}' | '\u{170}' | '\u{172}' => "U",
        '\u{DD}' | '\u{176}' | '\u{178}' => "Y",
        '\u{DE}' => "Th",
        '\u{DF}' => "ss",
        '\u{E0}' | '\u{E1}' | '\u{E2}' | '\u{E3}' | '\u{E4}' | '\u{E5}' | '\u{101}' | '\u{103}'
        | '\u{105}' => "a",
        '\u{E6}' => "ae",
        '\u{E7}' | '\u{107}' | '\u{109}' | '\u{10B}' | '\u{10D}' => "c",
        '\u{E8}' | '\u{E9}' | '\u{EA}' | '\u{EB}' | '\u{113}' | '\u{115}' | '\u{117}'
        | '\u{119}' | '\u{11B}' => "e",
        '\u{EC}' | '\u{ED}' | '\u{EE}' | '\u{EF}' | '\u{129}' | '\u{12B}' | '\u{12D}'
        | '\u{12F}' | '\u{131}' => "i",
        '\u{F0}' | '\u{10F}' | '\u{111}' => "d",
        '\u{F1}' | '\u{144}' | '\u{146}' | '\u{148}' | '\u{14B}' => "n",
        '\u{F2}' | '\u{F3}' | '\u{F4}' | '\u{F5}' | '\u{F6}' | '\u{F8}' | '\u{14D}' | '\u{14F}'
        | '\u{151}' => "o",
        '\u{F9}' | '\u{FA}' | '\u{FB}' | '\u{FC}' | '\u{169}' | '\u{16B}' | '\u{16D}'
        | '\u{16F}' | '\u{171}' | '\u{173}' => "u",
        '\u{FD}' | '\u{FF}' | '\u{177}' => "y",
        '\u{FE}' => "th",
        '\u{11C}' | '\u{11E}' | '\u{120}' | '\u{122}' => "G",
        '\u{11D}' | '\u{11F}' | '\u{121}' | '\u{123}' => "g",
        '\u{124}' | '\u{126}' => "H",
        '\u{125}' | '\u{127}' => "h",
        '\u{132}' => "IJ",
        '\u{133}' => "ij",
        '\u{134}' => "J",
        '\u{135}' => "j",
        '\u{136}' => "K",
        '\u{137}' | '\u{138}' => "k",
        '\u{139}' | '\u{13B}' | '\u{13D}' | '\u{13F}' | '\u{141}' => "L",
        '\u{13A}' | '\u{13C}' | '\u{13E}' | '\u{140}' | '\u{142}' => "l",
        '\u{149}' => "'n",
        '\u{152}' => "Oe",
        '\u{153}' => "oe",
        '\u{154}' | '\u{156}' | '\u{158}' => "R",
        '\u{155}' | '\u{157}' | '\u{159}' => "r",
        '\u{15A}' | '\u{15C}' | '\u{15E}' | '\u{160}' => "S",
        '\u{15B}' | '\u{15D}' | '\u{15F}' | '\u{161}' | '\u{17F}' => "s",
        '\u{162}' | '\u{164}' | '\u{166}' => "T",
        '\u{163}' | '\u{165}' | '\u{167}' => "t",
        '\u{174}' => "W",
        '\u{175}' => "w",
        '\u{179}' | '\u{17B}' | '\u{17D}' => "Z",
        '\u{17A}' | '\u{17C}' | '\u{17E}' => "z",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Character classes (lodash's `rs*Range` building blocks)

/// `rsApos`: `['\u2019]`.
fn is_apos(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}')
}

/// `rsCombo`: `[\u0300-\u036f\ufe20-\ufe2f\u20d0-\u20ff]`.
fn is_combo(c: char) -> bool {
    matches!(c, '\u{300}'..='\u{36F}' | '\u{FE20}'..='\u{FE2F}' | '\u{20D0}'..='\u{20FF}')
}

/// `rsUpper`: `[A-Z\xc0-\xd6\xd8-\xde]`.
fn is_upper(c: char) -> bool {
    matches!(c, 'A'..='Z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{DE}')
}

/// `rsLower`: `[a-z\xdf-\xf6\xf8-\xff]`.
fn is_lower(c: char) -> bool {
    matches!(c, 'a'..='z' | '\u{DF}'..='\u{F6}' | '\u{F8}'..='\u{FF}')
}

/// `\d` (ASCII digits only: lodash's regexes have no `u` flag).
fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// `rsBreak`: `rsMathOpRange + rsNonCharRange + rsPunctuationRange + rsSpaceRange`.
fn is_break(c: char) -> bool {
    matches!(c,
        // rsNonCharRange (contains the rsMathOpRange characters \xac and \xb1)
        '\u{0}'..='\u{2F}' | '\u{3A}'..='\u{40}' | '\u{5B}'..='\u{60}' | '\u{7B}'..='\u{BF}'
        // rsMathOpRange
        | '\u{D7}' | '\u{F7}'
        // rsPunctuationRange (contains \u200d ZWJ and most of rsSpaceRange)
        | '\u{2000}'..='\u{206F}'
        // rsSpaceRange outside the ranges above
        | '\u{1680}' | '\u{180E}' | '\u{3000}' | '\u{FEFF}')
}

/// `rsDingbat`: `[\u2700-\u27bf]`.
fn is_dingbat(c: char) -> bool {
    matches!(c, '\u{2700}'..='\u{27BF}')
}

/// A code point outside the BMP, i.e. a UTF-16 surrogate pair (`rsSurrPair`).
fn is_astral(c: char) -> bool {
    c > '\u{FFFF}'
}

/// `rsMisc`: `[^` astral, break, `\d+`, dingbat, lower, upper `]` — every other BMP code unit.
fn is_misc(c: char) -> bool {
    !is_astral(c)
        && !is_break(c)
        && !is_digit(c)
        && c != '+'
        && !is_dingbat(c)
        && !is_lower(c)
        && !is_upper(c)
}

/// `rsMiscLower`: `(?:rsLower|rsMisc)`.
fn is_misc_lower(c: char) -> bool {
    is_lower(c) || is_misc(c)
}

/// `rsMiscUpper`: `(?:rsUpper|rsMisc)`.
fn is_misc_upper(c: char) -> bool {
    is_upper(c) || is_misc(c)
}

/// `rsVarRange`: `[\ufe0e\ufe0f]`.
fn is_var(c: char) -> bool {
    matches!(c, '\u{FE0E}' | '\u{FE0F}')
}

/// `rsFitz`: `\ud83c[\udffb-\udfff]`, the skin-tone modifiers U+1F3FB..U+1F3FF.
fn is_fitz(c: char) -> bool {
    matches!(c, '\u{1F3FB}'..='\u{1F3FF}')
}

/// `rsModifier`: `(?:rsCombo|rsFitz)`.
fn is_modifier(c: char) -> bool {
    is_combo(c) || is_fitz(c)
}

/// `rsZWJ`: `\u200d`.
fn is_zwj(c: char) -> bool {
    c == '\u{200D}'
}

/// One regional indicator symbol, `\ud83c[\udde6-\uddff]` (U+1F1E6..U+1F1FF).
fn is_regional_indicator(c: char) -> bool {
    matches!(c, '\u{1F1E6}'..='\u{1F1FF}')
}

/// `s[i]` exists and satisfies `class`.
fn at(s: &[char], i: usize, class: fn(char) -> bool) -> bool {
    s.get(i).is_some_and(|&c| class(c))
}

// ---------------------------------------------------------------------------------------------
// words

/// lodash `words(string)` without a pattern: `hasUnicodeWord(string) ? unicodeWords(string) :
/// asciiWords(string)`. Returns the index ranges of the words in `s`.
fn words(s: &[char]) -> Vec<Range<usize>> {
    if has_unicode_word(s) {
        unicode_words(s)
    } else {
        ascii_words(s)
    }
}

/// lodash `hasUnicodeWord`: `reHasUnicodeWord`
/// (`/[a-z][A-Z]|[A-Z]{2}[a-z]|[0-9][a-zA-Z]|[a-zA-Z][0-9]|[^a-zA-Z0-9 ]/`) matches somewhere.
fn has_unicode_word(s: &[char]) -> bool {
    s.iter().enumerate().any(|(i, &c)| {
        let next = s.get(i + 1).copied();
        let next_is = |class: fn(&char) -> bool| next.as_ref().is_some_and(class);
        !(c.is_ascii_alphanumeric() || c == ' ')
            || (c.is_ascii_lowercase() && next_is(char::is_ascii_uppercase))
            || (c.is_ascii_uppercase()
                && next_is(char::is_ascii_uppercase)
                && s.get(i + 2).is_some_and(char::is_ascii_lowercase))
            || (c.is_ascii_digit() && next_is(char::is_ascii_alphabetic))
            || (c.is_ascii_alphabetic() && next_is(char::is_ascii_digit))
    })
}

/// lodash `asciiWords`: the matches of `reAsciiWord`
/// (`/[^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+/g`), i.e. maximal runs of characters that are
/// not ASCII punctuation, space or control characters.
fn ascii_words(s: &[char]) -> Vec<Range<usize>> {
    let is_word = |c: char| !c.is_ascii() || c.is_ascii_alphanumeric();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if is_word(s[i]) {
            let start = i;
            while i < s.len() && is_word(s[i]) {
                i += 1;
            }
            out.push(start..i);
        } else {
            i += 1;
        }
    }
    out
}

/// lodash `unicodeWords`: the matches of the global regex `reUnicodeWord`, which is the
/// alternation, tried in this order at each position,
///
/// 1. `rsUpper? rsLower+ rsOptContrLower (?=rsBreak|rsUpper|$)`
/// 2. `rsMiscUpper+ rsOptContrUpper (?=rsBreak|rsUpper rsMiscLower|$)`
/// 3. `rsUpper? rsMiscLower+ rsOptContrLower`
/// 4. `rsUpper+ rsOptContrUpper`
/// 5. `rsOrdUpper`, 6. `rsOrdLower`, 7. `\d+`, 8. `rsEmoji`.
///
/// Where no alternative matches, the search moves on by one character. No alternative can
/// match the empty string.
fn unicode_words(s: &[char]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < s.len() {
        let end = lower_word(s, p)
            .or_else(|| upper_word_before_break(s, p))
            .or_else(|| misc_lower_word(s, p))
            .or_else(|| upper_word(s, p))
            .or_else(|| ordinal(s, p, true))
            .or_else(|| ordinal(s, p, false))
            .or_else(|| digits(s, p))
            .or_else(|| emoji(s, p));
        match end {
            Some(end) => {
                out.push(p..end);
                p = end;
            }
            None => p += 1,
        }
    }
    out
}

/// `rsOptContrLower` / `rsOptContrUpper` when present at `i`: an apostrophe followed by
/// `d|ll|m|re|s|t|ve` (or the upper-case forms). Returns the end of the contraction.
///
/// `createCompounder` strips apostrophes before calling `words`, so `start_case` never sees
/// one; this exists so that `unicode_words` stays a faithful port.
fn contraction(s: &[char], i: usize, upper: bool) -> Option<usize> {
    const LOWER: [&str; 7] = ["d", "ll", "m", "re", "s", "t", "ve"];
    const UPPER: [&str; 7] = ["D", "LL", "M", "RE", "S", "T", "VE"];
    if !at(s, i, is_apos) {
        return None;
    }
    let rest = s.get(i + 1..).unwrap_or(&[]);
    let suffixes = if upper { UPPER } else { LOWER };
    suffixes.iter().find_map(|suffix| {
        let n = suffix.len(); // ASCII: bytes == chars
        (rest.len() >= n && rest.iter().zip(suffix.chars()).all(|(&a, b)| a == b))
            .then_some(i + 1 + n)
    })
}

/// Alternative 1: `rsUpper? rsLower+ rsOptContrLower (?=rsBreak|rsUpper|$)`.
///
/// Backtracking cannot help `rsLower+` (a shorter run is followed by a lower-case letter,
/// which the lookahead rejects), so only "with contraction" / "without" is tried.
fn lower_word(s: &[char], p: usize) -> Option<usize> {
    let lookahead = |e: usize| e == s.len() || is_break(s[e]) || is_upper(s[e]);
    let mut i = p;
    if at(s, i, is_upper) {
        i += 1;
    }
    let start = i;
    while at(s, i, is_lower) {
        i += 1;
    }
    if i == start {
        return None;
    }
    if let Some(e) = contraction(s, i, false) {
        if lookahead(e) {
            return Some(e);
        }
    }
    lookahead(i).then_some(i)
}

/// Alternative 2: `rsMiscUpper+ rsOptContrUpper (?=rsBreak|rsUpper rsMiscLower|$)`.
///
/// The greedy `rsMiscUpper+` backtracks one character at a time until the lookahead holds,
/// e.g. `XMLHttp` yields `XML` (the lookahead sees `H` followed by `t`).
fn upper_word_before_break(s: &[char], p: usize) -> Option<usize> {
    let lookahead = |e: usize| {
        e == s.len() || is_break(s[e]) || (is_upper(s[e]) && at(s, e + 1, is_misc_lower))
    };
    let mut max = p;
    while at(s, max, is_misc_upper) {
        max += 1;
    }
    (p + 1..=max).rev().find_map(|e| {
        contraction(s, e, true)
            .filter(|&c| lookahead(c))
            .or_else(|| lookahead(e).then_some(e))
    })
}

/// Alternative 3: `rsUpper? rsMiscLower+ rsOptContrLower`.
fn misc_lower_word(s: &[char], p: usize) -> Option<usize> {
    let mut i = p;
    if at(s, i, is_upper) {
        i += 1;
    }
    let start = i;
    while at(s, i, is_misc_lower) {
        i += 1;
    }
    if i == start {
        return None;
    }
    Some(contraction(s, i, false).unwrap_or(i))
}

/// Alternative 4: `rsUpper+ rsOptContrUpper`.
fn upper_word(s: &[char], p: usize) -> Option<usize> {
    let mut i = p;
    while at(s, i, is_upper) {
        i += 1;
    }
    if i == p {
        return None;
    }
    Some(contraction(s, i, true).unwrap_or(i))
}

/// Alternatives 5 and 6, `rsOrdUpper` / `rsOrdLower`:
/// `\d*(?:1st|2nd|3rd|(?![123])\dth)(?=\b|[A-Z_])` (upper: `1ST|2ND|3RD|…TH`, `(?=\b|[a-z_])`).
///
/// The suffix must follow the last digit of the run (any earlier split leaves a digit where
/// the suffix's letters would be), and the suffix is fixed by that digit. After the suffix's
/// last letter, `\b` fails exactly before `[A-Za-z0-9_]`, so the lookahead fails exactly
/// before `[A-Z0-9]` (ordinal in lower case) or `[a-z0-9]` (upper case).
fn ordinal(s: &[char], p: usize, upper: bool) -> Option<usize> {
    let mut i = p;
    while at(s, i, is_digit) {
        i += 1;
    }
    if i == p {
        return None;
    }
    let suffix = match s[i - 1] {
        '1' => ['s', 't'],
        '2' => ['n', 'd'],
        '3' => ['r', 'd'],
        _ => ['t', 'h'],
    };
    let suffix = suffix.map(|c| if upper { c.to_ascii_uppercase() } else { c });
    if s.get(i..i + 2) != Some(&suffix[..]) {
        return None;
    }
    let e = i + 2;
    let blocked = |c: &char| {
        c.is_ascii_digit()
            || if upper {
                c.is_ascii_uppercase()
            } else {
                c.is_ascii_lowercase()
            }
    };
    (!s.get(e).is_some_and(blocked)).then_some(e)
}

/// Alternative 7: `\d+`.
fn digits(s: &[char], p: usize) -> Option<usize> {
    let mut i = p;
    while at(s, i, is_digit) {
        i += 1;
    }
    (i > p).then_some(i)
}

/// `rsRegional`: two regional indicators at `i`; returns the end.
fn regional_pair(s: &[char], i: usize) -> Option<usize> {
    (at(s, i, is_regional_indicator) && at(s, i + 1, is_regional_indicator)).then_some(i + 2)
}

/// Alternative 8, `rsEmoji`: `(?:rsDingbat|rsRegional|rsSurrPair) rsSeq`.
fn emoji(s: &[char], p: usize) -> Option<usize> {
    let base_end = if at(s, p, is_dingbat) {
        p + 1
    } else if let Some(e) = regional_pair(s, p) {
        e
    } else if at(s, p, is_astral) {
        p + 1
    } else {
        return None;
    };
    Some(seq(s, base_end))
}

/// `rsSeq`: `rsOptVar reOptMod rsOptJoin`, where
/// `rsOptJoin = (?:rsZWJ (?:rsNonAstral|rsRegional|rsSurrPair) rsOptVar reOptMod)*`.
///
/// Everything in it is optional and it always ends its regex, so the greedy match is final.
fn seq(s: &[char], mut i: usize) -> usize {
    let opt_var_mod = |mut k: usize| {
        if at(s, k, is_var) {
            k += 1;
        }
        if at(s, k, is_modifier) {
            k += 1;
        }
        k
    };
    i = opt_var_mod(i);
    while at(s, i, is_zwj) && i + 1 < s.len() {
        let element_end = if !is_astral(s[i + 1]) {
            i + 2
        } else {
            regional_pair(s, i + 1).unwrap_or(i + 2)
        };
        i = opt_var_mod(element_end);
    }
    i
}

// ---------------------------------------------------------------------------------------------
// upperFirst

/// lodash `upperFirst(word)` (`createCaseFirst('toUpperCase')`), appended to `out`: the first
/// symbol of `word` is upper-cased with JavaScript `toUpperCase` semantics, the rest is kept.
///
/// If `hasUnicode(word)`, lodash takes the first symbol from `stringToArray`
/// (`unicodeToArray`, the global `reUnicode` matches); otherwise it is `charAt(0)`. Without a
/// ZWJ, astral character, combining mark or variation selector the first `reUnicode` match is
/// one character anyway, so `first_symbol_len` serves both cases.
fn upper_first_into(word: &[char], out: &mut String) {
    let first = first_symbol_len(word).min(word.len());
    for &c in &word[..first] {
        out.extend(c.to_uppercase());
    }
    out.extend(&word[first..]);
}

/// Length of the first match of lodash `reUnicode` at the start of `s`:
/// `rsFitz(?=rsFitz) | rsSymbol rsSeq`, with
/// `rsSymbol = (?:rsNonAstral rsCombo?|rsCombo|rsRegional|rsSurrPair|rsAstral)`.
///
/// `reUnicode` matches at every position, so its matches tile the string and joining all but
/// the first gives back the rest of it (lodash's `castSlice(strSymbols, 1).join('')`).
fn first_symbol_len(s: &[char]) -> usize {
    let Some(&c) = s.first() else {
        return 0;
    };
    if is_fitz(c) && at(s, 1, is_fitz) {
        return 1;
    }
    let symbol_end = if !is_astral(c) {
        if at(s, 1, is_combo) {
            2
        } else {
            1
        }
    } else {
        regional_pair(s, 0).unwrap_or(1)
    };
    seq(s, symbol_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Parses a jsonl file of `{"input": …, "start_case": …}` lines and returns one message
    /// per mismatch (or per unparsable line).
    fn check_jsonl(name: &str, data: &str) -> (usize, Vec<String>) {
        let mut failures = Vec::new();
        let mut count = 0;
        for (n, line) in data
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            count += 1;
            let value: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{name}:{}: bad json: {e}", n + 1));
                    continue;
                }
            };
            let (Some(input), Some(expected)) =
                (value["input"].as_str(), value["start_case"].as_str())
            else {
                failures.push(format!("{name}:{}: missing input/start_case", n + 1));
                continue;
            };
            let got = start_case(input);
            if got != expected {
                failures.push(format!(
                    "{name}:{}: start_case({input:?}) = {got:?}, lodash gives {expected:?}",
                    n + 1
                ));
            }
        }
        (count, failures)
    }

    #[test]
    fn lodash_vectors() {
        let data = include_str!("../../tests/data/startcase-vectors.jsonl");
        let (count, failures) = check_jsonl("startcase-vectors.jsonl", data);
        assert_eq!(count, 400, "expected 400 vectors");
        assert!(
            failures.is_empty(),
            "{} of {count} vectors fail:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn lodash_extra_vectors() {
        let data = include_str!("../../tests/data/startcase-extra.jsonl");
        let (count, failures) = check_jsonl("startcase-extra.jsonl", data);
        assert!(count >= 50, "expected the extra vectors, found {count}");
        assert!(
            failures.is_empty(),
            "{} of {count} vectors fail:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// Expected values checked against lodash 4.17.21 on Node 20.
    #[test]
    fn named_edge_cases() {
        let cases: &[(&str, &str)] = &[
            // empty / nothing but separators
            ("", ""),
            ("& ", ""),
            ("__--  ..", ""),
            // lodash's own examples
            ("--foo-bar--", "Foo Bar"),
            ("fooBar", "Foo Bar"),
            ("__FOO_BAR__", "FOO BAR"),
            // upper-case runs and camel case
            ("XMLHttpRequest", "XML Http Request"),
            ("getHTTPResponse", "Get HTTP Response"),
            ("iOS", "I OS"),
            // digits / letters boundaries
            ("v2", "V 2"),
            ("OAuth2", "O Auth 2"),
            ("q4revenue", "Q 4 Revenue"),
            ("90d", "90 D"),
            ("abc123def", "Abc 123 Def"),
            // ordinals
            ("1st2nd", "1 St 2nd"),
            ("1st_2nd", "1st 2nd"),
            ("21st", "21st"),
            ("11st", "11st"),
            ("12th", "12 Th"),
            ("4thQuarter", "4th Quarter"),
            ("1ST", "1ST"),
            ("2NDplace", "2ND Place"),
            ("3rdparty", "3 Rdparty"),
            // contractions: apostrophes are removed before splitting
            ("don't stop", "Dont Stop"),
            ("it’s", "Its"),
            ("WE'RE", "WERE"),
            // deburring, accented capitals
            ("ÉCOLE", "ECOLE"),
            ("Ærøskøbing", "Aeroskobing"),
            ("straße", "Strasse"),
            ("ŉ", "N"),
            ("e\u{301}te\u{301}", "Ete"),
            ("×÷", ""),
            // non-Latin letters are "misc" characters
            ("日本語 データ", "日本語 データ"),
            ("Ωmega", "Ωmega"),
            ("привет мир", "Привет Мир"),
            ("ǰ", "J\u{30C}"),
            // emoji
            ("🚀", "🚀"),
            ("rocket🚀launch", "Rocket 🚀 Launch"),
            ("👍🏽ok", "👍🏽 Ok"),
            ("👨\u{200D}👩\u{200D}👧", "👨\u{200D}👩\u{200D}👧"),
            ("🇫🇷🇩🇪", "🇫🇷 🇩🇪"),
            ("✔\u{FE0F}done", "✔\u{FE0F} Done"),
            ("😀\u{200D}a", "😀\u{200D}A"),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(input, expected)| start_case(input) != *expected)
            .map(|(input, expected)| {
                format!(
                    "start_case({input:?}) = {:?}, expected {expected:?}",
                    start_case(input)
                )
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// `words` (with its contraction handling, which `start_case` itself never reaches
    /// because apostrophes are stripped first) against lodash 4.17.21 `_.words`.
    #[test]
    fn words_matches_lodash_words() {
        let cases: &[(&str, &[&str])] = &[
            ("don't stop", &["don't", "stop"]),
            ("WE'RE here", &["WE'RE", "here"]),
            ("I'm", &["I", "m"]),
            ("it\u{2019}ll", &["it\u{2019}ll"]),
            ("x'y", &["x", "y"]),
            ("ABC's", &["ABC", "s"]),
            ("fooBar's", &["foo", "Bar's"]),
            ("XMLHttp'll", &["XML", "Http'll"]),
            ("aB'VEx", &["a", "B", "V", "Ex"]),
            ("caf\u{e9}'s", &["caf\u{e9}'s"]),
        ];
        for (input, expected) in cases {
            let chars: Vec<char> = input.chars().collect();
            let got: Vec<String> = words(&chars)
                .into_iter()
                .map(|range| chars[range].iter().collect())
                .collect();
            assert_eq!(got, *expected, "words({input:?})");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = start_case(&s);
        }

        #[test]
        fn never_panics_on_tricky_characters(
            s in "[a-zA-Z0-9 _'’\u{2019}\u{200D}\u{FE0F}\u{301}ÉéßŉΩ日🚀👍🏽🇫🇷✔-]{0,24}"
        ) {
            let _ = start_case(&s);
        }

        /// lodash is idempotent on ASCII letters, digits and spaces (checked with Node on
        /// random strings of this class), so the port must be too.
        #[test]
        fn idempotent_on_ascii_alphanumerics_and_spaces(s in "[a-zA-Z0-9 ]{0,32}") {
            let once = start_case(&s);
            prop_assert_eq!(start_case(&once), once);
        }
    }
}
