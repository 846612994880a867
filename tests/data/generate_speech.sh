#!/bin/sh
# Regenerates the VAD speech fixtures (see README.md): espeak-ng -> sox -> 8 kHz u-law raw.
set -e
out=${1:-.}
say() { # name, leading s, trailing s, text
  espeak-ng -v en-us -s 160 -w /tmp/_say.wav "$4"
  sox /tmp/_say.wav -D -r 8000 -c 1 -e u-law -t raw "$out/$1.ulaw" pad "$2" "$3"
}
say hello 0.5 0.6 "Hello, thanks for calling."
say appointment 0.4 0.6 "Your appointment is on Tuesday."
say goodbye 0.6 0.5 "Goodbye."
espeak-ng -v en-us -s 160 -w /tmp/_a.wav "Yes."
espeak-ng -v en-us -s 160 -w /tmp/_b.wav "That works for me."
sox -n -r 22050 -c 1 /tmp/_gap.wav trim 0 1.0
sox /tmp/_a.wav /tmp/_gap.wav /tmp/_b.wav -D -r 8000 -c 1 -e u-law -t raw "$out/two_utterances.ulaw" pad 0.5 0.6
