#version 330 core
// Material shading, in two modes chosen by defining TOON or not.
//
// Phong (the dataset's default, specification section 5):
//   base   = material diffuse RGB * texture RGB  (sphere: * sphere RGB or + sphere RGB)
//   colour = base * (ambient + directional * max(N.L, 0))
// Toon (MMD-like):
//   colour = clamp(material diffuse RGB * (ambient + directional), 0, 1) * texture RGB
//            (sphere: * or + sphere RGB) * toon(v = 0.5 - 0.5 * N.L)
// Both:
//   colour += material specular * directional * max(N.H, 0)^power   (power > 0)
//   alpha   = material alpha * texture alpha
// Material-morph texture factors (PMX テクスチャ/スフィア/Toon係数, multiply m and
// add a, identity m = 1, a = 0) act on a sample's RGB only, as MMEffect's full.fx
// applies them: rgb = clamp(mix(neutral, rgb * m.rgb + a.rgb, m.a + a.a), 0, 1),
// neutral 0 for an additive sphere map and 1 otherwise; the sample's alpha is
// left as it is.
//
// The material's diffuse colour is also its ambient coefficient, so a surface
// facing the viewer under the default lights (0.5 ambient + 0.5 along -z)
// shows exactly its texture colour (times or plus its sphere map); toon ramps
// are lit at their top row (N.L = 1), so toon mode agrees there. Modellers use
// sphere maps as part of a material's look (an additive .spa that brightens
// skin, say), so both modes apply them as MMD does: looked up by the view-space
// normal, multiplied into or added to the colour before lighting. As in MMD, the
// arithmetic is done on the stored 8-bit sRGB values directly, not in linear
// light. The output is premultiplied (rgb * a, a) for ONE, ONE_MINUS_SRC_ALPHA
// blending.
//
// The renderer compiles one variant per combination a model's materials need
// (llvmpipe runs both sides of a branch, so what a material lacks costs
// nothing only when compiled out), defining after the #version line:
//   TOON         toon shading instead of Phong;
//   TEXTURE      the material has a diffuse texture;
//   SPHERE_MODE  always defined: 0 none, 1 multiply, 2 add, 3 sub-texture (its
//                texture read with additional UV 1 and multiplied);
//   TOON_RAMP    (with TOON) the material has a toon ramp texture;
//   ALPHA_TEST   discard fragments with alpha < 1/255 (left out for materials
//                that cannot produce one, so llvmpipe can test depth early);
//   TWO_SIDED    light back faces with the flipped normal (double-sided materials);
//   SPECULAR     add the specular term (materials with power > 0 and a colour).

layout(std140) uniform Material {
    vec4 diffuse;           // RGBA after material morphs
    vec4 specular;          // RGB, specular power
    vec4 texture_multiply;  // factors on the texture sample's RGB (see tinted())
    vec4 texture_add;
    vec4 sphere_multiply;
    vec4 sphere_add;
    vec4 toon_multiply;
    vec4 toon_add;
};

#ifdef TEXTURE
uniform sampler2D diffuse_texture;
#endif
#if SPHERE_MODE != 0
uniform sampler2D sphere_texture;
#endif
#ifdef TOON_RAMP
uniform sampler2D toon_texture;
#endif
uniform float light_ambient;
uniform float light_directional;
uniform vec3 light_to;    // unit vector from the surface towards the light
uniform vec3 light_half;  // unit half vector of light_to and the view direction (+z)

in vec3 v_normal;
in vec2 v_uv;
in vec2 v_sub_uv;

out vec4 frag_colour;

// A sample's RGB after its material-morph factors; ``neutral`` is what weight 0 gives.
vec3 tinted(vec3 rgb, vec4 multiply, vec4 add, float neutral) {
    return clamp(mix(vec3(neutral), rgb * multiply.rgb + add.rgb, multiply.a + add.a), 0.0, 1.0);
}

void main() {
    vec4 tex = vec4(1.0);
#ifdef TEXTURE
    tex = texture(diffuse_texture, v_uv);
    tex.rgb = tinted(tex.rgb, texture_multiply, texture_add, 1.0);
#endif
    // Clamped: some models store alpha above 1 (MEIKO's lips: 99), which MMD draws opaque.
    float alpha = clamp(diffuse.a * tex.a, 0.0, 1.0);
#ifdef ALPHA_TEST
    if (alpha < 1.0 / 255.0) {
        discard;  // cut-outs leave no fringe in the depth buffer
    }
#endif
    vec3 n = normalize(v_normal);
#ifdef TWO_SIDED
    if (!gl_FrontFacing) {
        n = -n;  // two-sided lighting for double-sided materials
    }
#endif
#ifdef TOON
    vec3 colour = clamp(diffuse.rgb * (light_ambient + light_directional), 0.0, 1.0) * tex.rgb;
#else
    vec3 colour = diffuse.rgb * tex.rgb;
#endif
#if SPHERE_MODE != 0
    // Sphere maps are indexed by the view-space normal; v = 0 is the top row.
#if SPHERE_MODE == 3
    vec2 sphere_uv = v_sub_uv;
#else
    vec2 sphere_uv = vec2(0.5 + 0.5 * n.x, 0.5 - 0.5 * n.y);
#endif
#if SPHERE_MODE == 2
    colour += tinted(texture(sphere_texture, sphere_uv).rgb, sphere_multiply, sphere_add, 0.0);
#else
    colour *= tinted(texture(sphere_texture, sphere_uv).rgb, sphere_multiply, sphere_add, 1.0);
#endif
#endif
#ifdef TOON
#ifdef TOON_RAMP
    float ndl = dot(n, light_to);
    colour *= tinted(texture(toon_texture, vec2(0.5, 0.5 - 0.5 * ndl)).rgb, toon_multiply,
                     toon_add, 1.0);
#endif
#else
    colour *= light_ambient + light_directional * max(dot(n, light_to), 0.0);
#endif
#ifdef SPECULAR
    colour += specular.rgb * light_directional * pow(max(dot(n, light_half), 0.0), specular.w);
#endif
    colour = clamp(colour, 0.0, 1.0);
    frag_colour = vec4(colour * alpha, alpha);
}
