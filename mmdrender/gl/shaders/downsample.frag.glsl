#version 330 core
// Supersampling's filter: each output pixel is the mean of its FACTOR x FACTOR
// block of the large image (a box filter). The image is premultiplied, so the
// mean of its values is the right blend of the block's colours and coverage, and
// a block the character does not touch stays exactly (0, 0, 0, 0). FACTOR is
// defined by the renderer after the #version line.

uniform sampler2D image;

out vec4 colour;

void main() {
    ivec2 base = ivec2(gl_FragCoord.xy) * FACTOR;
    vec4 sum = vec4(0.0);
    for (int y = 0; y < FACTOR; ++y) {
        for (int x = 0; x < FACTOR; ++x) {
            sum += texelFetch(image, base + ivec2(x, y), 0);
        }
    }
    colour = sum / float(FACTOR * FACTOR);
}
