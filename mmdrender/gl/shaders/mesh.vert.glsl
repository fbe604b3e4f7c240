#version 330 core
// Shared by both shading modes. Positions are in the project frame (y up,
// +z = the character's front); the camera has no rotation, so world space is
// view space up to the orthographic scale and normals need no transform.

uniform mat4 mvp;  // camera projection: project frame -> clip space

in vec3 in_position;
in vec3 in_normal;
in vec2 in_uv;      // texture coordinates, v = 0 at the image's top row
in vec2 in_sub_uv;  // PMX additional UV 1 (sphere "sub-texture" mode)

out vec3 v_normal;
out vec2 v_uv;
out vec2 v_sub_uv;

void main() {
    gl_Position = mvp * vec4(in_position, 1.0);
    v_normal = in_normal;
    v_uv = in_uv;
    v_sub_uv = in_sub_uv;
}
